"""The ``safetravel`` command (also ``flask --app backend``): migrations, data loading, the demo."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import FlaskGroup

from backend.config import current_settings
from backend.extensions import db

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def register(app: Flask) -> None:
    app.cli.add_command(migrate)
    app.cli.add_command(councils)
    app.cli.add_command(streets)
    app.cli.add_command(demo)
    app.cli.add_command(heatmap)
    app.cli.add_command(dev_token)


@click.command()
def migrate() -> None:
    """Apply the database migrations (Alembic, forward only)."""
    from backend.migrate import upgrade

    upgrade(current_settings().database_url)
    click.echo("database is at the latest migration")


@click.group()
def councils() -> None:
    """Council areas."""


@councils.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False), default=str(DATA_DIR / "london_boroughs.geojson"))
@click.option("--code-field", default="code", show_default=True, help="attribute holding the GSS code")
@click.option("--name-field", default="name", show_default=True, help="attribute holding the name")
def councils_load(path: str, code_field: str, name_field: str) -> None:
    """Load council boundaries from a GeoJSON or GeoPackage file (default: London's boroughs)."""
    from backend.councils.service import load_council_areas

    count = load_council_areas(path, code_field=code_field, name_field=name_field)
    db.session.commit()
    click.echo(f"loaded {count} council areas from {path}")


@click.group()
def streets() -> None:
    """The street network: council exports rank street segments, walking routes follow them."""


@streets.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("--layer", default=None, help="layer to read (default: the first)")
@click.option("--id-field", default=None, help="attribute holding the segment's id in its source")
@click.option("--name-field", default="name", show_default=True, help="attribute holding the street name")
@click.option("--class-field", default=None, help="attribute holding the road class")
@click.option("--lit-field", default=None, help="attribute holding OpenStreetMap's lit tag (yes/no)")
@click.option("--append", is_flag=True, help="add to the loaded network instead of replacing it")
def streets_load(path: str | None, layer: str | None, id_field: str | None, name_field: str, class_field: str | None,
                 lit_field: str | None, append: bool) -> None:
    """Load street segments from a GeoPackage or GeoJSON file (OS Open Roads, an OpenStreetMap extract)
    and node them into the routing graph.

    Without PATH: the network shipped in data/london_streets.gpkg (OpenStreetMap), skipped when that
    same file is already loaded (`make run` does this on every start).

    For OS Open Roads: --layer road_link --id-field id --name-field name_1 --class-field road_classification."""
    from backend.streets.service import load_shipped_network, load_street_segments, loaded_network

    if path is None:
        count = load_shipped_network()
        db.session.commit()
        network = loaded_network()
        if count is None:
            click.echo(f"street network already loaded from {network.source} ({network.segments} segments)")
        else:
            click.echo(f"loaded {count} street segments ({network.edges} graph edges) from {network.source}")
        return
    try:
        count = load_street_segments(path, id_field=id_field, name_field=name_field, class_field=class_field,
                                     lit_field=lit_field, layer=layer, replace=not append)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    db.session.commit()
    click.echo(f"loaded {count} street segments from {path}")


@streets.command("clear")
def streets_clear() -> None:
    """Remove the street network: exports go back to grid cells."""
    from backend.streets.service import clear_street_segments

    removed = clear_street_segments()
    db.session.commit()
    click.echo(f"removed {removed} street segments")


@click.group()
def demo() -> None:
    """Demo data."""


@demo.command("seed")
@click.option("--reports", "count", default=25_000, show_default=True, help="how many reports")
@click.option("--seed", default=2026, show_default=True, help="random seed (same seed, same data)")
def demo_seed(count: int, seed: int) -> None:
    """Seed realistic safe hubs, commuters' devices and reports around London's stations (idempotent:
    re-running adds nothing), then rebuild the heatmap and the reports' nearby streets so that the
    reports show on the map and in safer routes (seeding skips the per-report jobs)."""
    from backend.demo.devices import seed_devices
    from backend.demo.hubs import seed_hubs
    from backend.demo.seed import seed_reports
    from backend.heatmap.rebuild import rebuild
    from backend.streets import nearby

    hubs = seed_hubs()
    db.session.commit()
    click.echo(f"demo safe hubs: {hubs} new")
    devices = seed_devices()
    db.session.commit()
    click.echo(f"demo devices: {devices} new")
    created = seed_reports(count=count, seed=seed)
    db.session.commit()
    click.echo(f"demo reports: {created} new, {count - created} already there")
    if created:
        db.session.remove()
        stats = rebuild()
        click.echo(f"heatmap rebuilt in {stats['seconds']:.1f} s")
        click.echo(f"reports near streets: {nearby.rebuild():,} (report, street edge) pairs")
        db.session.commit()


@click.group()
def heatmap() -> None:
    """Heatmap aggregates."""


@heatmap.command("rebuild")
def heatmap_rebuild() -> None:
    """Recompute every heatmap aggregate from the reports (the same result as incremental updates)."""
    from backend.heatmap.rebuild import rebuild

    stats = rebuild()
    click.echo(f"heatmap rebuilt in {stats['seconds']:.1f} s ({stats['routes']} routes)")


@click.command("dev-token")
@click.option("--uid", default="dev-user", show_default=True)
@click.option("--role", type=click.Choice(["commuter", "safety_team", "admin", "council"]), default="commuter")
@click.option("--council", "council_code", default=None, help="GSS code, with --role council")
def dev_token(uid: str, role: str, council_code: str | None) -> None:
    """Print an unsigned emulator ID token (development only; production refuses them)."""
    from backend.devtokens import emulator_token

    settings = current_settings()
    if settings.is_production:
        raise click.ClickException("dev tokens are for development: APP_ENV is production")
    click.echo(emulator_token(
        uid, project_id=settings.firebase_project_id,
        role=None if role == "commuter" else role, council=council_code,
    ))


def main() -> None:
    from backend import create_app
    from backend.config import prepare_process_environment

    prepare_process_environment()
    FlaskGroup(create_app=create_app, add_default_commands=True)(prog_name="safetravel")
