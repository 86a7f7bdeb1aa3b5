"""The composition root: settings → services, the app factory, the ordered hooks of a turn, the workers, the launcher.

The core (gateway/) knows no feature; the features (channels/, handoff/, crm_adapter/, kb_retrieval/, studio/, bot/)
know the core and not each other's insides. Here they are put together, each in one place:

- `settings.py`: the one Settings, combined from the core's and every package's own;
- `services.py`: what the app runs on, built from those settings (the core's services and the features on them);
- `hooks.py`: the hooks a turn runs through, in order, and where replies go;
- `workers.py`: the background work;
- `factory.py`: `create_app`, the FastAPI app with every route;
- `ports.py`: the bot's ports (bot/actions/ports.py) on top of the work orders and the knowledge base;
- `launch.py`, `stack.py`, `__main__.py`: starting processes (`make run`, `python -m app`).
"""
