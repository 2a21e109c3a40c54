"""Every route's minimum role, in one table (by route name).

``None`` marks a public route; ``GLOBAL_ADMIN`` a route outside any one project
that only a global admin may call. A route missing from this table stops the
app from starting (see ``check_every_route_is_declared``), so no route can be
added without deciding who may call it. The ``_ajax`` twins of MLflow routes
share their entry.
"""

from __future__ import annotations

from collections.abc import Iterable

from loopstack.auth import Role

__all__ = [
    "GLOBAL_ADMIN",
    "ROUTE_ROLES",
    "check_every_route_is_declared",
    "minimum_role",
]

GLOBAL_ADMIN = "global-admin"
V, DS, ML, ADMIN = Role.VIEWER, Role.DATA_SCIENTIST, Role.ML_ENGINEER, Role.ADMIN


def _all(role: Role | str | None, *names: str) -> dict[str, Role | str | None]:
    return dict.fromkeys(names, role)


ROUTE_ROLES: dict[str, Role | str | None] = {
    **_all(None, "health", "health_live", "docs_assets"),
    # the web UI's shell and files: no data in them (the page calls the API with a token)
    **_all(None, "ui_index", "ui_asset"),
    **_all(V, "metrics", "openapi", "docs", "whoami", "projects_list"),
    # -- native tracking ------------------------------------------------------------
    **_all(
        V,
        "experiments_list",
        "experiments_get",
        "experiments_get_by_name",
        "runs_get",
        "runs_search",
        "runs_metric_history",
        "runs_metric_histories",
        "artifacts_list",
        "artifacts_download",
        "audit_verify",
    ),
    **_all(
        DS,
        "experiments_create",
        "experiments_set_tag",
        "experiments_delete",
        "runs_create",
        "runs_update",
        "runs_delete",
        "runs_restore",
        "runs_log_batch",
        "runs_delete_tag",
        "runs_log_inputs",
        "artifacts_upload",
    ),
    **_all(ML, "audit_events"),
    # -- native registry --------------------------------------------------------------
    **_all(
        V,
        "models_list",
        "models_get",
        "models_versions",
        "models_version_get",
        "models_alias_get",
        "models_alias_history",
        "models_lineage",
        "models_version_gates",
        "model_versions_search",
        "lineage_get",
        "approvals_list",
    ),
    **_all(
        DS,
        "models_create",
        "models_update",
        "models_set_tag",
        "models_delete_tag",
        "models_version_create",
        "models_version_update",
        "models_version_set_tag",
        "models_version_delete_tag",
        "models_set_alias",
        "models_delete_alias",
        "models_promote",
    ),
    **_all(ML, "models_delete", "approvals_approve", "approvals_reject"),
    # -- datasets and validation results ----------------------------------------------
    **_all(V, "datasets_list", "datasets_get", "datasets_download"),
    **_all(V, "validations_list", "validations_get"),
    **_all(DS, "datasets_register", "validations_create"),
    # -- feature definitions and the online feature server ----------------------------
    **_all(
        V,
        "features_entities_list",
        "features_entities_get",
        "features_views_list",
        "features_views_get",
        "features_views_versions",
        "features_freshness",
        "features_services_list",
        "features_services_get",
        "features_online_read",
    ),
    **_all(DS, "features_apply", "features_views_delete"),
    # -- deployments (a production endpoint also needs approved versions, or an admin's
    # force: the store and routes/deployments.py check those) ------------------------
    **_all(
        V,
        "deployments_list",
        "deployments_get",
        "deployments_history",
        "deployments_bandit_state",
        "deployments_live",
    ),
    # -- an endpoint's monitoring report (drift, distributions, volume, alerts) ----------
    **_all(V, "monitoring_report"),
    **_all(
        ML,
        "deployments_create",
        "deployments_set",
        "deployments_canary",
        "deployments_shadow",
        "deployments_ab",
        "deployments_bandit",
        "deployments_promote",
        "deployments_rollback",
        "deployments_enrichment",
        "deployments_configure",
        "deployments_delete",
        "deployments_reward",
    ),
    # -- rollouts (a forced promotion past the production rule is an admin's: the
    # store checks it) ------------------------------------------------------------------
    **_all(V, "rollouts_list", "rollouts_get", "rollouts_events"),
    **_all(
        ML,
        "rollouts_start",
        "rollouts_tick",
        "rollouts_approve",
        "rollouts_pause",
        "rollouts_resume",
        "rollouts_promote",
        "rollouts_rollback",
    ),
    # -- pipelines (read only) and the loop's triggers ------------------------------------
    **_all(V, "pipelines_runs", "pipelines_run", "pipelines_run_graph", "pipelines_cost"),
    **_all(V, "loop_triggers", "loop_status"),
    **_all(
        ML,
        "loop_triggers_add",
        "loop_triggers_remove",
        "loop_triggers_switch",
        "loop_triggers_fire",
    ),
    # -- the serving app (loopstack serve): with --auth, a reader of the project whose
    # models it serves; its health, readiness and metrics stay public (probes, scrapers)
    **_all(None, "serving_metrics", "oip_live", "oip_ready"),
    **_all(
        V,
        "oip_server_metadata",
        "oip_model_metadata",
        "oip_model_version_metadata",
        "oip_model_ready",
        "oip_model_version_ready",
        "oip_infer",
        "oip_version_infer",
        "serving_endpoints",
        "serving_endpoint",
        "serving_predict",
        "serving_feedback",
        "serving_job_submit",
        "serving_job_get",
    ),
    # -- administration (no single project) -------------------------------------------
    **_all(
        GLOBAL_ADMIN,
        "projects_create",
        "projects_add_member",
        "projects_remove_member",
        "projects_set_policy",
        "users_list",
        "users_create",
        "users_disable",
        "tokens_list",
        "tokens_create",
        "tokens_revoke",
        "audit_anchor",
    ),
    # -- MLflow tracking --------------------------------------------------------------
    **_all(
        V,
        "mlflow_server_info",
        "mlflow_experiments_get",
        "mlflow_experiments_get_by_name",
        "mlflow_experiments_search",
        "mlflow_experiments_search_get",
        "mlflow_runs_get",
        "mlflow_runs_search",
        "mlflow_metrics_get_history",
        "mlflow_metrics_history_bulk",
        "mlflow_artifacts_list_for_run",
        "mlflow_artifacts_list",
        "mlflow_artifacts_download",
        "mlflow_logged_models_search",
        "mlflow_logged_models_get",
        "mlflow_logged_models_list_artifacts",
        "mlflow_logged_models_get_artifact",
    ),
    **_all(
        DS,
        "mlflow_experiments_create",
        "mlflow_experiments_delete",
        "mlflow_experiments_restore",
        "mlflow_experiments_update",
        "mlflow_experiments_set_tag",
        "mlflow_experiments_delete_tag",
        "mlflow_runs_create",
        "mlflow_runs_update",
        "mlflow_runs_delete",
        "mlflow_runs_restore",
        "mlflow_runs_log_metric",
        "mlflow_runs_log_param",
        "mlflow_runs_set_tag",
        "mlflow_runs_delete_tag",
        "mlflow_runs_log_batch",
        "mlflow_runs_log_inputs",
        "mlflow_runs_log_outputs",
        "mlflow_logged_models_create",
        "mlflow_logged_models_finalize",
        "mlflow_logged_models_delete",
        "mlflow_logged_models_set_tags",
        "mlflow_logged_models_delete_tag",
        "mlflow_logged_models_log_params",
        "mlflow_artifacts_upload",
    ),
    # -- MLflow registry --------------------------------------------------------------
    **_all(
        V,
        "mlflow_registered_models_get",
        "mlflow_registered_models_search",
        "mlflow_registered_models_get_by_alias",
        "mlflow_registered_models_latest_versions",
        "mlflow_registered_models_latest_versions_get",
        "mlflow_model_versions_get",
        "mlflow_model_versions_search",
        "mlflow_model_versions_download_uri",
    ),
    **_all(
        DS,
        "mlflow_registered_models_create",
        "mlflow_registered_models_update",
        "mlflow_registered_models_rename",
        "mlflow_registered_models_set_tag",
        "mlflow_registered_models_delete_tag",
        "mlflow_registered_models_set_alias",
        "mlflow_registered_models_delete_alias",
        "mlflow_model_versions_create",
        "mlflow_model_versions_update",
        "mlflow_model_versions_set_tag",
        "mlflow_model_versions_delete_tag",
    ),
    **_all(
        ML,
        "mlflow_registered_models_delete",
        "mlflow_model_versions_delete",
        "mlflow_model_versions_transition_stage",
    ),
}


def minimum_role(route_name: str) -> Role | str | None:
    """The declared minimum role of a route; KeyError for an undeclared one."""
    base = route_name.removesuffix("_ajax")
    return ROUTE_ROLES[base]


def check_every_route_is_declared(
    route_names: Iterable[str], table: dict[str, Role | str | None] | None = None
) -> None:
    """``RuntimeError`` naming the routes ``table`` (``ROUTE_ROLES`` by default) lacks."""
    table = ROUTE_ROLES if table is None else table
    missing = sorted({n for n in route_names if n.removesuffix("_ajax") not in table})
    if missing:
        raise RuntimeError(
            f"routes without a declared minimum role in loopstack/server/_route_roles.py: {missing}"
        )
