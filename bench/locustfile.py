"""The mixed workload of ``make bench-load`` (bench/load.py runs it): commuters reporting, finding the
nearest hubs and moving their devices; the safety team's dashboard pulling heatmap tiles.

Every report answered 201 is written down (LOAD_ANSWERED_FILE) so that the run can check that each
one is in the database: nothing lost, nothing twice. Reports still in flight when the run stops (locust
abandons them) are written down too (LOAD_IN_FLIGHT_FILE), with their Idempotency-Key, so that the run
can send them again as the app would."""

from __future__ import annotations

import json
import math
import os
import random
import uuid
from datetime import datetime, timedelta, timezone

from locust import HttpUser, between, events, task

from backend.devtokens import emulator_token

ANSWERED: list[str] = []
IN_FLIGHT: dict[str, dict] = {}  # Idempotency-Key -> the request, until it is answered
STAFF_TOKEN = emulator_token("load-staff", role="safety_team")
# Around central London, where the demo data is.
WEST, SOUTH, EAST, NORTH = -0.25, 51.44, 0.05, 51.56


def somewhere(rng: random.Random) -> list[float]:
    return [round(rng.uniform(WEST, EAST), 6), round(rng.uniform(SOUTH, NORTH), 6)]


def tile(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    n = 2**zoom
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


class Commuter(HttpUser):
    weight = 4
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.uid = f"load-{uuid.uuid4().hex[:12]}"
        self.headers = {"Authorization": f"Bearer {emulator_token(self.uid)}"}
        response = self.client.post("/api/v1/devices", name="POST /devices", headers=self.headers, json={
            "token": f"fcm-{uuid.uuid4().hex}-" + "x" * 100, "platform": "android", "radius_m": 1000,
            "location": {"type": "Point", "coordinates": somewhere(self.rng)}})
        self.device_id = response.json()["id"] if response.status_code in (200, 201) else None

    @task(3)
    def report(self) -> None:
        at = datetime.now(timezone.utc) - timedelta(minutes=self.rng.randint(1, 600))
        body = {"category": "harassment", "subcategory": self.rng.choice(["verbal", "following", "physical"]),
                "occurred_at": at.isoformat().replace("+00:00", "Z"),
                "location": {"type": "Point", "coordinates": somewhere(self.rng)},
                "transport": {"mode": self.rng.choice(["bus", "tube", "walking", "night_bus"])},
                "factors": self.rng.sample(["poor_lighting", "isolated", "no_staff"], k=self.rng.randint(0, 2))}
        key = str(uuid.uuid4())
        headers = {**self.headers, "Idempotency-Key": key}
        IN_FLIGHT[key] = {"uid": self.uid, "body": body}
        with self.client.post("/api/v1/reports", name="POST /reports", headers=headers, json=body,
                              catch_response=True) as response:
            IN_FLIGHT.pop(key, None)
            if response.status_code == 201:
                ANSWERED.append(response.json()["id"])
                response.success()
            else:
                response.failure(f"{response.status_code}")

    @task(3)
    def nearest_hubs(self) -> None:
        lon, lat = somewhere(self.rng)
        self.client.get(f"/api/v1/safe-hubs/nearest?lon={lon}&lat={lat}&open_now=true", name="GET /safe-hubs/nearest",
                        headers=self.headers)

    @task(1)
    def move_device(self) -> None:
        if self.device_id:
            self.client.patch(f"/api/v1/devices/{self.device_id}", name="PATCH /devices/{id}", headers=self.headers,
                              json={"location": {"type": "Point", "coordinates": somewhere(self.rng)}})


class SafetyTeam(HttpUser):
    weight = 1
    wait_time = between(0.2, 1)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.headers = {"Authorization": f"Bearer {STAFF_TOKEN}"}

    @task
    def heatmap_tiles(self) -> None:
        zoom = self.rng.choice([11, 12, 13, 14])
        x, y = tile(*somewhere(self.rng), zoom)
        with self.client.get(f"/api/v1/heatmap/tiles/{zoom}/{x}/{y}.mvt", name="GET /heatmap/tiles",
                             headers=self.headers, catch_response=True) as response:
            if response.status_code in (200, 204):
                response.success()


@events.test_stop.add_listener
def _write_answered(**_: object) -> None:
    with open(os.environ["LOAD_ANSWERED_FILE"], "w") as out:
        out.write("\n".join(ANSWERED))
    with open(os.environ["LOAD_IN_FLIGHT_FILE"], "w") as out:
        json.dump(IN_FLIGHT, out)
