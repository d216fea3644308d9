"""Code shared by the operator and the gateway: the Secret contract, token health, logging."""
