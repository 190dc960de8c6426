"""Core tables: the registry, vision events and dead letters (versions 1-99)."""

from __future__ import annotations

from .._migrations import Flavor, Migration


def _v1_core(flavor: Flavor) -> str:
    extension = "CREATE EXTENSION IF NOT EXISTS timescaledb;" if flavor is Flavor.TIMESCALE else ""
    return f"""
    {extension}
    CREATE TABLE districts (
        id text PRIMARY KEY,
        name text NOT NULL,
        kind text NOT NULL,
        lat double precision NOT NULL,
        lon double precision NOT NULL
    );
    CREATE TABLE sites (
        id text PRIMARY KEY,
        name text NOT NULL,
        district_id text NOT NULL,
        lat double precision NOT NULL,
        lon double precision NOT NULL
    );
    CREATE TABLE cameras (
        id text PRIMARY KEY,
        name text NOT NULL,
        kind text NOT NULL,
        district_id text NOT NULL,
        road text,
        lat double precision NOT NULL,
        lon double precision NOT NULL,
        fps real NOT NULL,
        zones jsonb NOT NULL DEFAULT '[]',
        lines jsonb NOT NULL DEFAULT '[]',
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE access_points (
        id text PRIMARY KEY,
        name text NOT NULL,
        site_id text NOT NULL,
        district_id text NOT NULL,
        lat double precision NOT NULL,
        lon double precision NOT NULL,
        capacity integer NOT NULL
    );
    CREATE TABLE events (
        event_id text NOT NULL,
        phase text NOT NULL,
        kind text NOT NULL,
        camera_id text NOT NULL,
        zone_id text,
        line_id text,
        direction text,
        started_at timestamptz NOT NULL,
        ended_at timestamptz,
        score real NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (event_id, phase, received_at)
    );
    CREATE INDEX events_camera_time ON events (camera_id, started_at DESC);
    CREATE TABLE dead_letters (
        id bigserial PRIMARY KEY,
        received_at timestamptz NOT NULL DEFAULT now(),
        consumer text NOT NULL,
        topic text NOT NULL,
        reason text NOT NULL,
        payload bytea NOT NULL
    );
    CREATE INDEX dead_letters_time ON dead_letters (received_at DESC);
    """


MIGRATIONS = [Migration(1, "core registry, events, dead letters", _v1_core)]
