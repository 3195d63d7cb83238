"""The events domains publish, the handlers that subscribe, and the workers that serve their queues
agree: a published event nobody handles, a handler for an event nobody publishes, or a queue no
worker pool serves would each lose work silently, so each fails here (and at start-up)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from backend import DOMAINS, queues
from backend.outbox import registry
from worker.__main__ import parse_args

ROOT = Path(__file__).resolve().parents[2]


def published_events() -> dict[str, list[str]]:
    """Every event name passed to publish() (or to the single-statement form, tasks_params()) in backend/,
    with where. Names are literals or module-level string constants (imported ones too)."""
    trees = {path: ast.parse(path.read_text()) for path in (ROOT / "backend").rglob("*.py")}
    constants = {t.id: node.value.value for tree in trees.values() for node in tree.body
                 if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                 for t in node.targets if isinstance(t, ast.Name)}
    found: dict[str, list[str]] = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("publish", "tasks_params") and node.args):
                first = node.args[0]
                name = first.value if isinstance(first, ast.Constant) else constants.get(getattr(first, "id", ""))
                assert isinstance(name, str), f"{path}:{node.lineno}: publish an event by a name the test can read"
                found.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_published_event_is_catalogued_and_every_catalogued_one_is_published(app):
    published = published_events()
    assert set(published) == set(registry.EVENTS), published


def test_every_event_has_a_handler_and_every_handler_an_event(app):
    handled = {h.event for h in registry.all_handlers()}
    assert handled == set(registry.EVENTS)
    registry.check()


def test_each_publisher_is_the_domain_the_catalogue_names(app):
    for name, places in published_events().items():
        publishers = {Path(place).parts[1] for place in places}
        assert publishers == {registry.EVENTS[name].publisher}, (name, places)


def test_every_queue_a_handler_uses_is_served_by_the_default_worker_and_a_kubernetes_pool(app):
    used = {h.queue for h in registry.all_handlers() if h.queue is not None}
    assert used <= set(queues.ALL)
    assert used <= set(parse_args([]).queues)  # `python -m worker` with no arguments
    pools = [doc for doc in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "workers.yaml").read_text())
             if doc and doc["kind"] == "Deployment"]
    served_in_k8s = {q for pool in pools for q in pool["spec"]["template"]["spec"]["containers"][0]["command"][3:]}
    assert used <= served_in_k8s


def test_queued_handlers_have_stable_task_names_and_say_whether_they_commit(app):
    tasks = {h.task: h for h in registry.all_handlers() if not h.inline}
    # Tasks already waiting in a deployed outbox name these: renaming one strands them.
    assert set(tasks) == {"heatmap.apply_report", "alerts.check_cluster", "alerts.send", "alerts.send_confirmed",
                          "alerts.notify_reporter", "exports.build", "webhooks.report_created",
                          "webhooks.report_status_changed", "webhooks.cluster_detected", "webhooks.alert_sent",
                          "webhooks.deliver", "streets.report_edges"}
    assert {t for t, h in tasks.items() if h.commits_on_its_own} == {"alerts.send", "alerts.send_confirmed",
                                                                      "exports.build", "webhooks.deliver"}


def test_a_domain_with_handlers_the_app_does_not_load_is_refused():
    with pytest.raises(registry.RegistryError, match="heatmap"):
        registry.load([d for d in DOMAINS if d != "heatmap"])


def test_an_event_without_a_handler_is_refused(monkeypatch):
    monkeypatch.setitem(registry.EVENTS, "report.vanished",
                        registry.Event("report.vanished", "reports", "nobody listens", payload=("report_id",)))
    with pytest.raises(registry.RegistryError, match="nobody handles 'report.vanished'"):
        registry.check()


def test_a_handler_on_a_queue_no_worker_serves_is_refused(monkeypatch):
    handlers = [*registry.all_handlers(),
                registry.Handler("report.created", lambda report_id: None, "heatmap", "heatmap.sideways", "sideways")]
    monkeypatch.setattr(registry, "_handlers", handlers)
    with pytest.raises(registry.RegistryError, match="'sideways', which no worker serves"):
        registry.check()


def test_a_handler_with_a_condition_gets_a_task_only_while_it_holds(app, monkeypatch):
    from backend.outbox import service as outbox

    def build_export(export_id):
        return None

    monkeypatch.setattr(registry, "_handlers", [
        registry.Handler("export.requested", build_export, "exports", "exports.never", queues.EXPORTS, when="false"),
        registry.Handler("export.requested", build_export, "exports", "exports.while", queues.EXPORTS,
                         when="EXISTS (SELECT FROM outbox WHERE task = 'exports.while')"),
        registry.Handler("export.requested", build_export, "exports", "exports.always", queues.EXPORTS),
    ])
    assert [t.task for t in outbox.publish("export.requested", {"export_id": "e-1"})] == ["exports.always"]
    outbox.add("exports.while", queues.EXPORTS, {"export_id": "e-0"})
    assert [t.task for t in outbox.publish("export.requested", {"export_id": "e-2"})] == ["exports.while",
                                                                                           "exports.always"]
    with pytest.raises(registry.RegistryError, match="no condition"):
        registry.subscribe("user.erasing", build_export, when="true")


# -- how domains may depend on each other ---------------------------------------------------------

def _domain_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "backend" and parts[1] in DOMAINS else None


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, inside a function) for every import in a file."""
    tree = ast.parse(path.read_text())
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f) if n is not f}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]
            found += [(n, id(node) in nested) for n in names]
        elif isinstance(node, ast.Import):
            found += [(a.name, id(node) in nested) for a in node.names]
    return found


def test_no_domain_imports_another_domain_at_call_time():
    hidden = []
    for path in (ROOT / "backend").rglob("*.py"):
        own = _domain_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for module, in_function in _imports(path):
            other = _domain_of(module)
            if own and other and other != own and in_function:
                hidden.append(f"{path.relative_to(ROOT)} imports {module} inside a function")
    assert hidden == []


def test_nothing_under_backend_or_schemas_imports_worker_and_schemas_import_no_service():
    offending = []
    for folder in ("backend", "schemas"):
        for path in (ROOT / folder).rglob("*.py"):
            for module, _ in _imports(path):
                if module == "worker" or module.startswith("worker."):
                    offending.append(f"{path.relative_to(ROOT)} imports {module}")
                if folder == "schemas" and (".service" in module or module.endswith(".service")):
                    offending.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offending == []


def test_domains_depend_on_each_other_one_way():
    """Top-level imports between domains (reads: alerts use hubs to name safe places) form no cycle."""
    edges: dict[str, set[str]] = {}
    for path in (ROOT / "backend").rglob("*.py"):
        own = _domain_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for module, _ in _imports(path):
            other = _domain_of(module)
            if own and other and other != own:
                edges.setdefault(own, set()).add(other)

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges.get(start, ()))

    assert [d for d in edges if reaches(d, d)] == []
