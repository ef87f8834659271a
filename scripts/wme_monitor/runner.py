"""The run: every check in its own thread, retries, and the run deadline over all of them."""

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from .checks import CHECKS, Attempt, CheckResult, CheckSpec, evaluate
from .config import RETRY_DELAY_S, Config, check_url, display_url
from .http_attempt import USER_AGENT, Observation, perform_attempt
from .reasons import Deadline, ReasonCode, deadline_reason, describe_exception, is_retryable
from .units import format_rfc3339, utc_now

FINALIZE_GRACE_S = 0.25  # main thread waits this long past the run deadline for checks


def request_headers(spec: CheckSpec, api_key: str) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Connection": "close", "Accept": "*/*"}
    if spec.needs_key:
        headers["X-API-Key"] = api_key
    return headers


def run_check(
    spec: CheckSpec,
    config: Config,
    run_start: float,
    run_deadline: float,
    *,
    perform: Callable[[str, dict[str, str], float], Observation] = perform_attempt,
    sleep: Callable[[float], None] = time.sleep,
    on_start: Callable[[int, str, float], None] | None = None,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> CheckResult:
    url = check_url(config.base_url, spec.path)
    headers = request_headers(spec, config.api_key)
    result = CheckResult(spec.name, spec.method, display_url(url))
    for number in range(1, config.retries + 2):
        if number > 1:
            sleep(min(RETRY_DELAY_S, max(0.0, run_deadline - time.perf_counter())))
            if time.perf_counter() >= run_deadline:
                break
        started_at = format_rfc3339(utc_now())
        t0 = time.perf_counter()
        if on_start:
            on_start(number, started_at, t0)
        own_deadline = t0 + config.timeout_ms / 1000
        bounded_by_run = run_deadline < own_deadline
        obs = perform(url, headers, run_deadline if bounded_by_run else own_deadline)
        if bounded_by_run:
            deadline = Deadline(
                ReasonCode.RUN_DEADLINE,
                config.run_timeout_ms,
                (time.perf_counter() - run_start) * 1000,
            )
        else:
            deadline = Deadline(ReasonCode.TIMEOUT, config.timeout_ms, obs.elapsed_ms)
        reasons = evaluate(spec, obs, config.threshold_ms, deadline, config.api_key)
        error = None
        if obs.error is not None:
            error = describe_exception(obs.error, config.api_key)
        attempt = Attempt(
            number=number,
            started_at=started_at,
            elapsed_ms=obs.elapsed_ms,
            http_status=obs.http_status,
            total_ms=obs.total_ms,
            ttfb_ms=obs.ttfb_ms,
            nbytes=obs.nbytes,
            reasons=reasons,
            error=error,
        )
        result.attempts.append(attempt)
        if on_attempt:
            on_attempt(attempt)
        if attempt.passed or not is_retryable(reasons):
            break
    return result


class _CheckSlot:
    """One check's thread and what it has recorded so far."""

    def __init__(self, spec: CheckSpec, config: Config) -> None:
        self.spec = spec
        self.url = display_url(check_url(config.base_url, spec.path))
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.attempts: list[Attempt] = []
        self.current: tuple[int, str, float] | None = None  # attempt in flight
        self.result: CheckResult | None = None

    def started(self, number: int, started_at: str, t0: float) -> None:
        with self.lock:
            self.current = (number, started_at, t0)

    def record(self, attempt: Attempt) -> None:
        with self.lock:
            self.attempts.append(attempt)

    def run(
        self,
        config: Config,
        run_start: float,
        run_deadline: float,
        perform: Callable[..., Observation],
    ) -> None:
        try:
            result = run_check(
                self.spec,
                config,
                run_start,
                run_deadline,
                perform=perform,
                on_start=self.started,
                on_attempt=self.record,
            )
            with self.lock:
                self.result = result
        finally:
            self.done.set()

    def finalize(self, config: Config, run_start: float) -> CheckResult:
        """The check's result, or a run_deadline failure if it never finished."""
        with self.lock:
            if self.result is not None:
                return self.result
            attempts = list(self.attempts)
            current = self.current
        now = time.perf_counter()
        if current is not None and current[0] > len(attempts):
            number, started_at, t0 = current
        else:  # stuck between attempts (or before the first one)
            number, started_at, t0 = len(attempts) + 1, format_rfc3339(utc_now()), now
        reason = deadline_reason(
            Deadline(ReasonCode.RUN_DEADLINE, config.run_timeout_ms, (now - run_start) * 1000)
        )
        attempts.append(
            Attempt(
                number=number,
                started_at=started_at,
                elapsed_ms=(now - t0) * 1000,
                http_status=None,
                total_ms=None,
                ttfb_ms=None,
                nbytes=0,
                reasons=[reason],
                error="check did not finish before the run deadline",
            )
        )
        return CheckResult(self.spec.name, self.spec.method, self.url, attempts)


def run_checks(
    config: Config,
    specs: Sequence[CheckSpec] = CHECKS,
    *,
    perform: Callable[..., Observation] = perform_attempt,
) -> tuple[list[CheckResult], datetime, float]:
    """Run all checks concurrently under the run deadline.

    Returns the results, the wall-clock start and the duration in ms. Check
    threads are daemons: one that is stuck cannot keep the process alive.
    """
    started_at = utc_now()
    run_start = time.perf_counter()
    run_deadline = run_start + config.run_timeout_ms / 1000
    slots = [_CheckSlot(spec, config) for spec in specs]
    for slot in slots:
        threading.Thread(
            target=slot.run,
            args=(config, run_start, run_deadline, perform),
            daemon=True,
            name=f"monitor-{slot.spec.name}",
        ).start()
    hard_stop = run_deadline + FINALIZE_GRACE_S
    for slot in slots:
        slot.done.wait(max(0.0, hard_stop - time.perf_counter()))
    results = [slot.finalize(config, run_start) for slot in slots]
    return results, started_at, (time.perf_counter() - run_start) * 1000
