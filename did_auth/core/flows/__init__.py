"""Protocol flows: pure decisions over an injected store, chain reader and clock.

Nothing here imports fastapi, redis or web3.
"""
