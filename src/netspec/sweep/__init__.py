"""Sweeps and the runs they leave: a spec's ``sweep:`` section (:mod:`.spec`), its spaces as
Optuna suggestions (:mod:`.space`), the study and its storage (:mod:`.study`), the trials run in
processes (:mod:`.runner`, :mod:`.trial`), the results: the trials table, the best spec and the
pictures (:mod:`.results`); a folder of runs in one table and two runs compared (:mod:`.runs`,
:mod:`.diff`); the ``sweep`` and ``runs`` commands (:mod:`.cli`). ``docs/sweeps.md`` tells the story.
"""
