"""The REST channel: trusted integrations and tests post a message and get the bot's replies in the response.

`POST /channels/rest/webhook` with `{"sender", "message", "metadata"?}` answers Rasa-REST style, each item with
`meta` (intent, confidence, kb_article_ids, work_order_id, conversation_status). Sending the same
`metadata.message_id` (or `Idempotency-Key` header) twice is answered once: the second call gets the first's replies.
"""

from channels.rest.connector import RestConnector, RestRequest

__all__ = ["RestConnector", "RestRequest"]
