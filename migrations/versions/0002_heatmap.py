"""Heatmap aggregates: report counts per grid cell, local day and hour, category and mode.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Forward only: once landed, a migration is never edited; a change is a new migration.

The grid is the slippy-map tile pyramid in Web Mercator (EPSG:3857): a cell at level L is the tile
(L, x, y), so ST_TileEnvelope(L, x, y) is its square and a map tile at zoom z < L holds whole cells.
Every report is placed at the finest level (18: cells of about 95 m in London): its location's
cell (heatmap_fine_x/_y below) and, for a route, every cell the route passes through
(backend/heatmap/grid.py). A cell is keyed by the Morton code q of its (x, y); the cells of a
coarser level L are those fine cells' ancestors, q >> 2 * (18 - L). The incremental job and the full rebuild both use these
definitions, so they agree exactly.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Level 18: 2^18 cells around the world; s = 40075016.685578488 / 2^18 metres of Web Mercator.
FINE_CELL_M = 152.8740565703525
HALF = 131072  # 2^17
LAST = 262143  # 2^18 - 1
MAX_LAT = 85.0511287798


def _spread(v: str) -> str:
    """SQL spreading the low 24 bits of ``v`` to the even bit positions (Morton interleave)."""
    e = f"({v})::bigint"
    for shift, mask in ((16, "0000FFFF0000FFFF"), (8, "00FF00FF00FF00FF"), (4, "0F0F0F0F0F0F0F0F"),
                        (2, "3333333333333333"), (1, "5555555555555555")):
        e = f"(({e} | ({e} << {shift})) & x'{mask}'::bigint)"
    return e


def _compact(v: str) -> str:
    """SQL gathering the even bits of ``v`` back into an integer (the inverse of _spread)."""
    e = f"({v} & x'5555555555555555'::bigint)"
    for shift, mask in ((1, "3333333333333333"), (2, "0F0F0F0F0F0F0F0F"), (4, "00FF00FF00FF00FF"),
                        (8, "0000FFFF0000FFFF"), (16, "00000000FFFFFFFF")):
        e = f"(({e} | ({e} >> {shift})) & x'{mask}'::bigint)"
    return f"({e})::integer"


def upgrade() -> None:
    op.add_column("reports", sa.Column("heatmap_counted_at", sa.DateTime(timezone=True)))

    op.execute(f"""
        CREATE FUNCTION heatmap_fine_x(mx double precision) RETURNS integer
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN least({LAST}, greatest(0, floor(mx / {FINE_CELL_M})::integer + {HALF}));

        CREATE FUNCTION heatmap_fine_y(my double precision) RETURNS integer
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN least({LAST}, greatest(0, floor(-my / {FINE_CELL_M})::integer + {HALF}));
    """)
    # A cell's key: the Morton (Z-order) code of its x and y, so that every map tile's cells form one
    # contiguous key range (one index range scan per tile) and a parent is a shift: q >> 2.
    op.execute("""
        CREATE FUNCTION heatmap_morton(x integer, y integer) RETURNS bigint
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN heatmap_spread(x) | (heatmap_spread(y) << 1);
    """.replace("heatmap_spread(x)", _spread("x")).replace("heatmap_spread(y)", _spread("y")))
    op.execute(f"""
        CREATE FUNCTION heatmap_cell_x(q bigint) RETURNS integer
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN {_compact("q")};

        CREATE FUNCTION heatmap_cell_y(q bigint) RETURNS integer
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN {_compact("(q >> 1)")};
    """)

    # Where a report's geometries fall in Web Mercator. Latitudes beyond Web Mercator's range are
    # clamped for the location; a route reaching beyond it is left out (the location still counts).
    # Route cells are computed from these coordinates by backend/heatmap/grid.py.
    op.execute(f"""
        CREATE FUNCTION heatmap_point_3857(location geometry) RETURNS geometry
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN ST_Transform(ST_SetSRID(ST_MakePoint(
            ST_X(location), greatest(-{MAX_LAT}, least({MAX_LAT}, ST_Y(location)))), 4326), 3857);

        CREATE FUNCTION heatmap_route_3857(route geometry) RETURNS geometry
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN CASE WHEN ST_YMax(route) < {MAX_LAT} AND ST_YMin(route) > -{MAX_LAT}
                    THEN ST_Transform(route, 3857) END;
    """)

    cube_columns = lambda: [  # noqa: E731 - the same columns for the live and the retained counts
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("q", sa.BigInteger, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("hour", sa.SmallInteger, nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    ]
    # Counts per cell (level, Morton key q), local day and hour, category and mode ('' for none).
    op.create_table(
        "heatmap_cells", *cube_columns(),
        sa.PrimaryKeyConstraint("level", "q", "day", "hour", "category", "mode", name="heatmap_cells_pkey"),
    )
    # The counts of reports that were erased (DELETE /me, retention): aggregates keep counts, and a
    # rebuild adds these to what the remaining reports give.
    op.create_table(
        "heatmap_retained", *cube_columns(),
        sa.PrimaryKeyConstraint("level", "q", "day", "hour", "category", "mode", name="heatmap_retained_pkey"),
    )
    # All-time counts per cell, category and mode: the compact table that answers views without a
    # time filter (the default map) from a few rows per cell.
    op.create_table(
        "heatmap_totals",
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("q", sa.BigInteger, nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("level", "q", "category", "mode", name="heatmap_totals_pkey"),
    )
    # Who reported in each public (coarse) cell per local day and category, for the public heatmap's
    # distinct-reporter threshold. Erasing a person removes them here (cascade).
    op.create_table(
        "heatmap_reporters",
        sa.Column("q", sa.BigInteger, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("author_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.PrimaryKeyConstraint("q", "day", "category", "author_id", name="heatmap_reporters_pkey"),
    )
    op.create_index("ix_heatmap_reporters_author_id", "heatmap_reporters", ["author_id"])


def downgrade() -> None:
    raise NotImplementedError("Migrations are forward only; restore from a backup instead.")
