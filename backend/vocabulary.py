"""The words of the contract (docs/api.md): what a report, a device and a triage may say. Shared by every
domain, the schemas and the pages (through GET /api/v1/meta); migrations copy them into CHECK constraints."""

CATEGORIES = ("harassment", "spiking", "unsafe_route")

SUBCATEGORIES = {
    "harassment": ("verbal", "physical", "following", "exposure", "sexual", "intimidation", "other"),
    "spiking": ("drink", "needle", "other"),
    "unsafe_route": ("poor_lighting", "isolated", "antisocial_behaviour", "overcrowded", "other"),
}

MODES = (
    "bus", "night_bus", "tube", "rail", "overground", "dlr", "tram", "taxi", "walking", "cycling", "other",
)

FACTORS = (
    "poor_lighting", "isolated", "no_staff", "no_cctv", "overcrowded", "antisocial_behaviour", "poor_visibility",
)

STATUSES = ("received", "reviewing", "actioned", "closed", "rejected")

MAX_DESCRIPTION_CHARS = 2000
MAX_ROUTE_VERTICES = 500
MAX_ROUTE_LENGTH_M = 20_000
MAX_NOTE_CHARS = 1000
MAX_ACCURACY_M = 10_000
FUTURE_SKEW_S = 300
