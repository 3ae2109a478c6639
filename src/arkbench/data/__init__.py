"""arkbench's data layer: every task as a ``DatasetDict`` in its hub schema.

    from arkbench.data import TASKS, get_task, load_task, load_prepared
    dd = load_task("rte", source="local", local_dir="../shared/data")
    spec = get_task("rte")          # text_fields, label_names, metric, eval_splits...
    dd = load_prepared("rte")       # what `dvc repro download` wrote to data/tasks/rte

Sources: ``embedded`` (generated offline, :mod:`.embedded`), ``local`` (original
layouts, :mod:`.local`), ``hub`` (:mod:`.hub`). Registry: :mod:`.registry`.
"""
from .load import SOURCES, build_task, fingerprint, load_prepared, load_task, prepared_source
from ..errors import DataError, DataFormatError, DataMissingError
from .registry import GLUE_TASKS, TASKS, TaskSpec, get_task

__all__ = ["TASKS", "GLUE_TASKS", "TaskSpec", "get_task", "load_task", "build_task",
           "load_prepared", "prepared_source", "fingerprint", "SOURCES", "DataError", "DataFormatError",
           "DataMissingError"]
