"""The only code that knows bcc or dtrace exists: probe loading, record decoding, environment
checks."""
