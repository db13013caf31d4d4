"""Starting a worker: check the topics, build the app, serve metrics, run until stopped."""

from __future__ import annotations

import logging
from collections.abc import Callable

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from detectors.errors import ConfigError
from detectors.rules import Settings
from streams.kafka.config import KafkaConfig

__all__ = ["CLIENT_LOGGERS", "check_topics", "quiet_client_debug_logs", "run_worker"]


def check_topics(config: KafkaConfig) -> None:
    """Every topic must exist with ``config.partitions`` partitions (outputs go to the
    partition number of their input). Raises ``ConfigError`` saying what to do."""
    try:
        admin = KafkaAdminClient(client_id="carewatch-worker-check", **config.kafka_python_kwargs())
    except KafkaError as exc:
        raise ConfigError(f"cannot reach Kafka at {config.bootstrap}: {exc}") from None
    try:
        t = config.topics
        names = [t.events, t.outcomes, t.failures, t.rejected, t.sessions]
        existing = set(admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            raise ConfigError(
                f"topics {', '.join(missing)} do not exist; create them with carewatch kafka init"
            )
        for desc in admin.describe_topics(names):
            n = len(desc["partitions"])
            if n != config.partitions:
                raise ConfigError(
                    f"topic {desc['topic']} has {n} partitions but partitions is "
                    f"{config.partitions}; all Carewatch topics need the same count"
                )
    finally:
        admin.close()


def _use_uvloop(log: Callable[[str], None]) -> None:
    """Run faust on uvloop where it is installed (a dependency except on Windows):
    faust passes every message through several asyncio tasks, and uvloop's loop made a
    draining worker about 10% faster."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        log("uvloop is not installed; using the standard asyncio event loop")
        return
    import mode.loop

    mode.loop.use("uvloop")


#: Loggers whose DEBUG records print protocol requests and responses whole, record values
#: (patient identifiers) included: held at INFO whatever --log-level says.
CLIENT_LOGGERS = ("aiokafka", "kafka")


def quiet_client_debug_logs() -> None:
    """Keep the Kafka clients' DEBUG records out of the log: they carry record contents
    (a fetch response holds the journal chunks and outputs it read). Carewatch's own and
    faust's debug lines stay available with ``--log-level debug``."""
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


def run_worker(config: KafkaConfig, settings: Settings, *, replay: bool, log_level: str) -> int:
    """Run a worker until it is stopped (SIGINT/SIGTERM); returns the exit code."""
    import faust

    from streams.kafka.app import build_app, log

    _use_uvloop(log)

    check_topics(config)
    lateness = (
        config.allowed_lateness
        if config.allowed_lateness is not None
        else settings.allowed_lateness
    )
    app, rt = build_app(config, settings, replay=replay, lateness=lateness)
    if config.metrics_port is not None:
        from prometheus_client import CollectorRegistry, start_http_server

        from streams.kafka.metrics import WorkerMetrics

        registry = CollectorRegistry()
        metrics = WorkerMetrics(
            registry,
            lambda: list(rt.states.values()),
            [d.name for d in settings.detectors],
            rt.lag,
            feeds=settings.feeds,
            live=not replay,
            site_labels=settings.site_labels,
            uncommitted=rt.uncommitted,
        )
        rt.on_states_changed.append(metrics.attach)

        @app.timer(interval=5.0)
        async def refresh_metrics() -> None:
            metrics.attach()

        try:
            start_http_server(config.metrics_port, addr=config.metrics_host, registry=registry)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {config.metrics_host}:{config.metrics_port}: {exc.strerror}"
            ) from None
    log(f"starting ({'replay' if replay else 'live'}) with {config!r}")
    worker = faust.Worker(app, loglevel=log_level, quiet=True)
    # faust configures logging when the worker starts: the clients are quietened after.
    setup_root_logger = worker.on_setup_root_logger

    def on_setup_root_logger(logger: logging.Logger, level: int) -> None:
        setup_root_logger(logger, level)
        quiet_client_debug_logs()

    worker.on_setup_root_logger = on_setup_root_logger  # type: ignore[method-assign]
    # No start-up spinner: to drive it faust sets the root logger to DEBUG and adds a
    # handler, so every debug call of faust, mode and aiokafka (one per record sent)
    # built a log record that was then thrown away: about 6% of a draining worker's time.
    worker.spinner = None
    worker.execute_from_commandline()
    return 0
