"""SMS through Twilio: `POST /channels/sms/webhook` (form-encoded, signed), `POST /channels/sms/status` (receipts).

Replies leave through Twilio's REST API from the outbox; the webhook answers an empty TwiML response at once.
"""

from channels.sms.connector import SmsConnector, SmsSettings

__all__ = ["SmsConnector", "SmsSettings"]
