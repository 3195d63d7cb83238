/* The dashboard's English strings (see ../i18n.js). Keys are grouped by the part of the page they
   belong to: "sign_in.", "filters.", "hotspots.", "triage.", "hubs.", "alerts.", "exports.", "streets.". */
"use strict";

self.SAFETRAVEL_DASHBOARD_CATALOGUES = Object.assign(self.SAFETRAVEL_DASHBOARD_CATALOGUES || {}, {
  en: {
    "page.title": "SafeTravel dashboard",

    "triage.filters": "Which reports",
    "triage.all": "All",
    "triage.category": "Category",
    "triage.status": "Status",
    "triage.mode": "Mode",
    "triage.in_view": "In the map's view",
    "triage.from": "From",
    "triage.to": "To (included)",
    "triage.from_after_to": "“From” is after “To”.",
    "triage.keys": "Keys, outside a field: j / k next / previous report (shown on the map), Enter shows it again, 1–{last} set its status ({statuses}), n writes the note for the reporter.",
    "triage.none": "No reports match these filters.",
    "triage.range": "Reports {first}–{last}.",
    "triage.range_more": "Reports {first}–{last}; older ones follow.",
    "triage.newer": "Newer",
    "triage.older": "Older",
    "triage.line": "Line",
    "triage.station": "Station",
    "triage.factors": "Factors",
    "triage.route": "Route",
    "triage.route_points": { one: "{count} point", other: "{count} points" },
    "triage.no_description": "(no description)",
    "triage.told": "Told the reporter: {note}",
    "triage.told_nothing": "Nothing told to the reporter yet.",
    "triage.public_note": "Note for the reporter (sent when saved)",
    "triage.save": "Save",
    "triage.show_on_map": "Show on map",
    "triage.saved": "Saved: {status}",
  },
});
