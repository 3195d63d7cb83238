// Where the phone is, as a promise: [lon, lat] and the accuracy in metres.
export function here() {
  return new Promise((resolve, reject) => navigator.geolocation.getCurrentPosition(
    (p) => resolve({ coordinates: [p.coords.longitude, p.coords.latitude], accuracy: p.coords.accuracy }),
    reject, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 }));
}
