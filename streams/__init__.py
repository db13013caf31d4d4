"""Carewatch's shells around the detector engine: readers and writers, the embedded
runner, the command line, and (later) the Kafka worker and the format adapters."""
