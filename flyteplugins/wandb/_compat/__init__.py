"""Every use of a wandb or flyte private helper, and of wandb's protobuf records, in one package.

The plugin supports a range of wandb and flyte releases (see ``docs/versions.md``). Public APIs
(``wandb.init``, ``wandb.Settings``, ``flyte.ctx``, ...) are called directly; anything private
(module internals, singleton objects, protobuf fields of the transaction log) is reached only
through a function of this package. Each one detects what the installed release offers
(``hasattr``/try-import, computed once) and degrades to a documented fallback, so that the next
release that moves an internal breaks one function here, not the package.

One module per concern, every name re-exported here (``from ._compat import X``):

- :mod:`.versions`: the supported floors, the version gates, ``wandb.Settings`` per release;
- :mod:`.init_arguments`: ``wandb.init``'s arguments per release, known without importing wandb;
- :mod:`.wandb_state`: wandb's process-wide state (setup singleton, global run, service);
- :mod:`.wandb_helpers`: wandb's private helpers the plugin reuses (packages, config file, artifacts);
- :mod:`.records`: the transaction log's protobuf records;
- :mod:`.flyte`: flyte internals;
- :mod:`.cold_start`: wandb's own ``init`` and the first run start's fixed waits;
- :mod:`.telemetry`: wandb's exit-time usage telemetry.

Nothing here imports wandb, flyte or protobuf at import time: each function imports what it
uses when it is called. A test that pretends another release patches the module that defines
the name (``versions.wandb_version``), where the functions of the package look it up.

Example:
    >>> from flyteplugins.wandb._compat import version_tuple
    >>> version_tuple("0.19.10") < version_tuple("0.23.0") <= version_tuple("0.31.0rc1")
    True
"""

from __future__ import annotations

from .cold_start import (
    prepare_wandb,
    real_wandb_init,
)
from .flyte import (
    action_tracker,
    can_record_traces,
    control_plane_available,
    flyte_client,
    flyte_initialized,
    is_function_task,
    local_report_file,
    task_action,
    tracked_actions,
    watch_task_execution,
)
from .init_arguments import (
    WANDB_INIT_ARGUMENTS,
    init_argument_since,
    init_arguments_for,
    known_init_arguments,
)
from .records import (
    FlatRecords,
    flat_records,
    load_records_without_sdk,
    parse_record,
    record_field,
    record_has,
    record_kind,
    record_time,
    record_type_number,
)
from .telemetry import (
    bound_exit_telemetry,
)
from .versions import (
    MIN_FLYTE,
    MIN_WANDB,
    WANDB_FEATURES,
    WandbFeature,
    explicit_settings,
    run_id_validator,
    settings_computed_fields,
    settings_fields_set,
    settings_for_installed_wandb,
    version_tuple,
    wandb_at_least,
    wandb_supports_setting,
    wandb_version,
)
from .wandb_helpers import (
    add_reference_entry,
    publish_python_packages,
    save_config_file,
    working_set,
)
from .wandb_state import (
    bound_account_lookups,
    end_service_at_exit,
    failed_start_wedges_service,
    follow_global_run,
    most_recent_active_run,
    next_local_step,
    process_settings,
    restart_service_after_failed_init,
    run_is_finished,
    service_process,
    set_global_run,
    setup_root_dir,
    stored_global_run,
    teardown_wandb,
    unset_global_run,
    wandb_is_set_up,
)

__all__ = [
    "MIN_FLYTE",
    "MIN_WANDB",
    "WANDB_FEATURES",
    "WANDB_INIT_ARGUMENTS",
    "FlatRecords",
    "WandbFeature",
    "action_tracker",
    "add_reference_entry",
    "bound_account_lookups",
    "bound_exit_telemetry",
    "can_record_traces",
    "control_plane_available",
    "end_service_at_exit",
    "explicit_settings",
    "failed_start_wedges_service",
    "flat_records",
    "flyte_client",
    "flyte_initialized",
    "follow_global_run",
    "init_argument_since",
    "init_arguments_for",
    "is_function_task",
    "known_init_arguments",
    "load_records_without_sdk",
    "local_report_file",
    "most_recent_active_run",
    "next_local_step",
    "parse_record",
    "prepare_wandb",
    "process_settings",
    "publish_python_packages",
    "real_wandb_init",
    "record_field",
    "record_has",
    "record_kind",
    "record_time",
    "record_type_number",
    "restart_service_after_failed_init",
    "run_id_validator",
    "run_is_finished",
    "save_config_file",
    "service_process",
    "set_global_run",
    "settings_computed_fields",
    "settings_fields_set",
    "settings_for_installed_wandb",
    "setup_root_dir",
    "stored_global_run",
    "task_action",
    "teardown_wandb",
    "tracked_actions",
    "unset_global_run",
    "version_tuple",
    "wandb_at_least",
    "wandb_is_set_up",
    "wandb_supports_setting",
    "wandb_version",
    "watch_task_execution",
    "working_set",
]
