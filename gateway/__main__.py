"""`python -m gateway`: the name operators, the Docker image and Compose know for serving the gateway; the same as
`python -m app` (the composition root builds the app: the core itself knows no feature to build it from)."""

import runpy

runpy.run_module("app", run_name="__main__", alter_sys=True)
