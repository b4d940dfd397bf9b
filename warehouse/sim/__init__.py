"""Simulator core: accounts, orders, frictions and strategies, driven by the replay.

costs.py (execution price, fees, volume profile) → broker.py (validation, matching,
fills, watchdog) → strategies.py (the strategy API, per tick or per batch; examples) → run.py
(replay into the accounts, ledger tables for the warehouse); kernels.py holds the compiled
loops of the batch path.
"""
