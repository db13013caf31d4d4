"""The Kafka runtime: faust-streaming workers around the same detection engine.

Small modules: ``config`` (settings), ``wire`` (message formats), ``journal`` and
``partitions`` (per-partition state, no Kafka), ``admin``, ``publisher``, ``ledger``,
``app`` (the faust shell), ``tail``. See ``docs/kafka.md``.
"""
