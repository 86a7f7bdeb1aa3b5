"""Run in the engine's environment: load one trained model and classify texts with it, for the studio's evaluation.

stdin: {"model": "<path to .tar.gz>", "texts": ["...", ...]}; stdout: one JSON line, [{"intent", "confidence"}, ...].
Loading the model in one short-lived process (~10 s with TensorFlow's import) is faster than starting a throwaway
`rasa run` server (~40 s) or `rasa test nlu` (which also writes reports we do not need).
"""

import asyncio
import json
import logging
import os
import sys


async def _predict(model: str, texts: list) -> list:
    from rasa.core.agent import Agent

    agent = Agent.load(model)
    results = []
    for text in texts:
        parsed = await agent.parse_message(text)
        intent = parsed.get("intent") or {}
        results.append({"intent": intent.get("name"), "confidence": intent.get("confidence")})
    return results


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.disable(logging.WARNING)
    # Import the heavy parts first, then wait for the request: the studio starts this process while the model is
    # still training, so TensorFlow's import overlaps the training instead of adding to the wait.
    import rasa.core.agent  # noqa: F401

    request = json.load(sys.stdin)
    results = asyncio.run(_predict(request["model"], list(request["texts"])))
    sys.stdout.write(json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
