"""Deterministic simulation explorer (issue 15): the real Controller and SafetySupervisor on a
scripted driver in virtual time, driven by seeded stimuli, invariants checked at every step.

`vloop` virtual-time event loop; `driver` scripted driver and belt model; `stimuli` what the
world does; `invariants` the checks; `world` one seed; `campaign` many seeds. Run it with
`uv run python bench/explore.py`; CI runs a fixed budget in `test_explorer.py`.
"""
