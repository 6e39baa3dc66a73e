"""What every broker source shares: messages in, reading columns and reasoned rejects out.

Not a source itself (the registry finds no component here): the `mqtt` and `nats` sources hand
their messages to `decode` and yield its batch, so a payload means the same on either broker.
"""

from daemon.sources.messages.origin import payload_issues
from daemon.sources.messages.payload import Decoded, Message, PayloadRules, decode

__all__ = ["Decoded", "Message", "PayloadRules", "decode", "payload_issues"]
