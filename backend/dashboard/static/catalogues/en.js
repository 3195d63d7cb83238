/* The dashboard's English strings (see ../i18n.js). Keys are grouped by the part of the page they
   belong to: "sign_in.", "filters.", "hotspots.", "triage.", "hubs.", "alerts.", "exports.", "streets.". */
"use strict";

self.SAFETRAVEL_DASHBOARD_CATALOGUES = Object.assign(self.SAFETRAVEL_DASHBOARD_CATALOGUES || {}, {
  en: {
    "page.title": "SafeTravel dashboard",
  },
});
