"""Quality improvement from the outcome ledger.

One module per concern: ``ledger`` (reading, latest per ``failure_id``), ``measures``
(periods in local time, failure counts and proportions), ``spc`` (XmR and Laney's p′,
pure functions of a series), ``series`` (one chart per measure, with changes and
targets), ``charts`` and ``report`` (matplotlib SVG/PNG, the offline HTML report),
``export`` (pseudonymised ledger). Nothing here is imported at ``streams`` import time.
"""
