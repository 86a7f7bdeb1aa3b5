"""The content studio at /studio: staff edit the KB, intents and responses (written back to Rasa's YAML), work the
review queue of what the bot did not understand, train, evaluate, and put a better model live (or roll back).

Public face: `studio.api.router` (the JSON API) and `studio.pages.router` (the page), for the app factory.
"""
