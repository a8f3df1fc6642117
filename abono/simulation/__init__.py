"""The history simulator: realistic customers played through the real services on a simulated
clock (docs/simulator.md). Sandbox only; never imported by the serving app."""
