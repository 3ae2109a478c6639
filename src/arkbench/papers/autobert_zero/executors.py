"""Where candidates are evaluated: in this process, or as Ray tasks.

    ex = build_executor({"kind": "ray", "address": None, "num_cpus": 2, "gpus_per_candidate": 0.25})
    evaluate = ex.bind(fn, context)       # fn(context, payload) -> result; context shipped once
    for i, result in evaluate(payloads):  # (index, result) as candidates finish, any order
        ...
    ex.shutdown()

- InProcessExecutor: one candidate after another (the smoke default).
- RayExecutor: `ray.init()` on the local cores by default (`num_cpus` caps them),
  or `address` to join a running cluster ("auto", "ray://host:10001"); each candidate
  is a task asking for `cpus_per_candidate` CPUs and `gpus_per_candidate` (a fraction,
  so several candidates share a GPU). The context (proxy data, super-net weights) goes
  into the object store once per bind.

Results do not depend on the executor: the search folds them in proposal order and a
candidate's evaluation is deterministic (proxy.evaluate_candidate).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

EXECUTORS = ("inprocess", "ray")


class InProcessExecutor:
    kind = "inprocess"

    def bind(self, fn: Callable[[Any, Any], dict], context: Any):
        def evaluate(payloads: list) -> Iterator[tuple[int, dict]]:
            for i, p in enumerate(payloads):
                yield i, fn(context, p)
        return evaluate

    def shutdown(self) -> None:
        pass


class RayExecutor:
    kind = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 cpus_per_candidate: float = 1, gpus_per_candidate: float = 0.0):
        import ray

        self.ray = ray
        self.owns = not ray.is_initialized()
        if self.owns:
            kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            if address:
                ray.init(address=address, **kw)
            else:
                ray.init(num_cpus=num_cpus, **kw)
        self.options = dict(num_cpus=cpus_per_candidate, num_gpus=gpus_per_candidate, max_retries=2)

    def bind(self, fn: Callable[[Any, Any], dict], context: Any):
        ray = self.ray
        ctx_ref = ray.put(context)
        remote = ray.remote(_call).options(**self.options)

        def evaluate(payloads: list) -> Iterator[tuple[int, dict]]:
            refs = [remote.remote(fn, ctx_ref, p) for p in payloads]
            index = {r: i for i, r in enumerate(refs)}
            waiting = list(refs)
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                for r in done:
                    yield index[r], ray.get(r)
        return evaluate

    def shutdown(self) -> None:
        if self.owns and self.ray.is_initialized():
            self.ray.shutdown()


def _call(fn, context, payload):
    return fn(context, payload)


def build_executor(spec: dict | None) -> InProcessExecutor | RayExecutor:
    """From params: {kind: inprocess} | {kind: ray, address?, num_cpus?, cpus_per_candidate?,
    gpus_per_candidate?, fallback?: inprocess}. With `fallback: inprocess` a Ray start-up failure
    (e.g. the raylet timing out on an overloaded machine) logs a warning and the candidates run
    in this process instead: the search's history is the same either way."""
    spec = dict(spec or {})
    kind = spec.pop("kind", "inprocess")
    fallback = spec.pop("fallback", None)
    if kind == "inprocess":
        return InProcessExecutor()
    if kind == "ray":
        allowed = {"address", "num_cpus", "cpus_per_candidate", "gpus_per_candidate"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"executor: unknown keys {sorted(unknown)} for kind 'ray'; allowed {sorted(allowed)}")
        if fallback not in (None, "inprocess"):
            raise ValueError(f"executor.fallback={fallback!r}: allowed 'inprocess' or unset")
        try:
            return RayExecutor(**spec)
        except Exception as e:  # noqa: BLE001 - Ray raises plain Exception on start-up failures
            if fallback != "inprocess":
                raise
            import logging

            logging.getLogger(__name__).warning("Ray did not start (%s: %s); evaluating in-process",
                                                type(e).__name__, e)
            return InProcessExecutor()
    raise ValueError(f"executor.kind={kind!r}: allowed {EXECUTORS}")
