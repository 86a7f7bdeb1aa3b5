"""The content studio at /studio: staff edit the KB, intents and responses (written back to Rasa's YAML), work the
review queue of what the bot did not understand, train, evaluate, and put a better model live (or roll back).

Public face: `routers` (the JSON API and the page) for the app factory.
"""

from studio.api import router as api_router
from studio.pages import router as page_router

routers = (api_router, page_router)

__all__ = ["routers"]
