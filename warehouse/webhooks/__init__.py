"""Order-lifecycle webhooks: signing (signing.py) and the receiver (receiver.py, `wh webhooks serve`)."""
