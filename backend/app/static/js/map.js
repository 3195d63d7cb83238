// Small MapLibre maps, loaded after the screen is usable (the library is large; reporting never waits
// for it). MapLibre is the copy vendored for the dashboard, served from its static route.
// Its CSP build: the workers come from their own file, so the page's Content-Security-Policy needs no blob:.
const SCRIPT = "/dashboard/static/vendor/maplibre-gl/maplibre-gl-csp.js";
const WORKER = "/dashboard/static/vendor/maplibre-gl/maplibre-gl-csp-worker.js";
const STYLESHEET = "/dashboard/static/vendor/maplibre-gl/maplibre-gl.css";
const LONDON = [-0.1276, 51.5072];
let loading = null;
let styleUrl = null;

export function configure(appConfig) { styleUrl = appConfig.basemapStyleUrl; }

function library() {
  loading ||= new Promise((resolve, reject) => {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = STYLESHEET;
    document.head.append(link);
    const script = document.createElement("script");
    script.src = SCRIPT;
    script.onload = () => {
      window.maplibregl.setWorkerUrl(WORKER);
      resolve(window.maplibregl);
    };
    script.onerror = () => reject(new Error("map library unavailable"));
    document.head.append(script);
  });
  return loading;
}

const PLAIN = {
  version: 8,
  sources: {},
  layers: [{ id: "background", type: "background", paint: { "background-color": "#eef0ec" } }],
};

/** A map in container, or null when the browser cannot draw one (no WebGL): the app works without. */
export async function createMap(container, { center = LONDON, zoom = 15 } = {}) {
  try {
    const maplibregl = await library();
    const map = new maplibregl.Map({ container, style: styleUrl || PLAIN, center, zoom,
      attributionControl: { compact: true }, cooperativeGestures: false });
    map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
    map.on("load", () => {
      map.addSource("underground", { type: "geojson", data: "/dashboard/data/underground.geojson",
        attribution: "Underground: © OpenStreetMap contributors" });
      map.addLayer({ id: "underground", type: "line", source: "underground",
        paint: { "line-color": "#6b7a8f", "line-width": 2, "line-opacity": 0.6 } });
      map.addSource("route", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
      map.addLayer({ id: "route", type: "line", source: "route", paint: { "line-color": "#a3132a", "line-width": 4 } });
    });
    return { maplibregl, map };
  } catch {
    container.hidden = true;
    return null;
  }
}

export function marker(maplibregl, className, options = {}) {
  const element = document.createElement("div");
  element.className = className;
  return new maplibregl.Marker({ element, ...options });
}

export function showRoute(map, coordinates) {
  const source = map.getSource("route");
  if (!source) return;
  source.setData({ type: "FeatureCollection", features: coordinates.length < 2 ? [] : [
    { type: "Feature", properties: {}, geometry: { type: "LineString", coordinates } }] });
}

/** Both walking routes of GET /routes/safer: the safer one solid and on top, the shortest dashed
 * beneath; the map fitted to them. The container's data-drawn lists the kinds drawn. */
export function showWalks(map, collection) {
  const draw = () => {
    if (map.getSource("walks")) map.getSource("walks").setData(collection);
    else {
      map.addSource("walks", { type: "geojson", data: collection });
      map.addLayer({ id: "walk-shortest", type: "line", source: "walks", filter: ["==", ["get", "kind"], "shortest"],
        paint: { "line-color": "#4a4658", "line-width": 4, "line-dasharray": [2, 1.5] } });
      map.addLayer({ id: "walk-safer", type: "line", source: "walks", filter: ["==", ["get", "kind"], "safer"],
        paint: { "line-color": "#1c6b3a", "line-width": 6, "line-opacity": 0.8 } });
    }
    const points = collection.features.flatMap((f) => f.geometry.coordinates);
    const lons = points.map((c) => c[0]);
    const lats = points.map((c) => c[1]);
    map.fitBounds([[Math.min(...lons), Math.min(...lats)], [Math.max(...lons), Math.max(...lats)]], { padding: 30, duration: 0 });
    map.getContainer().dataset.drawn = collection.features.map((f) => f.properties.kind).join(" ");
  };
  if (map.getSource("route")) draw(); else map.once("load", draw); // "route": added once the style has loaded
}
