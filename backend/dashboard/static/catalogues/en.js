/* The dashboard's English strings (see ../i18n.js). Keys are grouped by the part of the page they
   belong to: "sign_in.", "filters.", "hotspots.", "triage.", "hubs.", "alerts.", "exports.", "streets.". */
"use strict";

self.SAFETRAVEL_DASHBOARD_CATALOGUES = Object.assign(self.SAFETRAVEL_DASHBOARD_CATALOGUES || {}, {
  en: {
    "page.title": "SafeTravel dashboard",
    "filters.nights_hint": "A range across midnight is a night and counts with the day it starts on: Fri and Sat with 22-4 are Friday and Saturday nights, until 04:00 on Saturday and Sunday.",
    "hotspots.grid": "Grid",
    "hotspots.grid_6km": "Cells of about 6 km",
    "hotspots.grid_1500m": "Cells of about 1.5 km",
    "hotspots.grid_380m": "Cells of about 380 m",
    "hotspots.grid_95m": "Cells of about 95 m",
    "hotspots.period": "{from} to {to}, against {previous_from} to {previous_to}. Places with at least {min} reports.",
    "hotspots.name_street_station": "{street}, near {station}",
    "hotspots.name_station": "Near {station}",
    "hotspots.name_cell": "Grid cell {cell}",
    "hotspots.station_distance": "{station} is {metres} m away",
    "hotspots.count": { one: "{count} report", other: "{count} reports" },
    "hotspots.previously": "previously {previous} ({change})",
    "hotspots.change_new": "new",
    "hotspots.confidence_strong": "▲ Rising: very likely more than chance (p = {p})",
    "hotspots.confidence_moderate": "▲ Rising: likely more than chance (p = {p})",
    "hotspots.confidence_none": "No clear rise: could be chance (p = {p})",
    "hotspots.not_rising": "No rise",
    "hotspots.empty": "No place has {min} or more reports in this period with these filters.",
  },
});
