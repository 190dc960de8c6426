"""Citizen reports (Open311 GeoReport v2): keys, requests, photos, and their links to alerts
(versions 500-519)."""

from __future__ import annotations

from .._migrations import Flavor, Migration


def _v500_open311(flavor: Flavor) -> str:
    return """
    -- Client applications' API keys: only a SHA-256 of each key is kept (shown once).
    CREATE TABLE open311_keys (
        name text PRIMARY KEY,
        key_hash bytea NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
    );

    CREATE TABLE open311_requests (
        id bigserial PRIMARY KEY,
        token uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
        service_code text NOT NULL,
        description text CHECK (length(description) <= 4000),
        lat double precision NOT NULL,
        lon double precision NOT NULL,
        address_string text,
        address_id text,
        district_id text NOT NULL,
        attributes jsonb NOT NULL DEFAULT '{}',
        media_url text,
        media_id uuid,
        channel text NOT NULL DEFAULT 'app' CHECK (channel IN ('app', 'hotline')),
        api_key_name text,
        device_id text,
        -- Personal data: never in a GET; the caller's number only encrypted (AES-GCM).
        first_name text,
        last_name text,
        email text,
        phone text,
        caller_number_enc bytea,
        alert_id uuid REFERENCES alerts (id),
        requested_at timestamptz NOT NULL DEFAULT now(),
        expected_at timestamptz NOT NULL,
        escalated_at timestamptz
    );
    CREATE INDEX open311_requests_time ON open311_requests (requested_at DESC);
    CREATE INDEX open311_requests_alert ON open311_requests (alert_id);

    -- Which alert handles a report: its own, a duplicate's, or a camera's it joined.
    CREATE TABLE open311_links (
        request_id bigint NOT NULL REFERENCES open311_requests (id),
        alert_id uuid NOT NULL REFERENCES alerts (id),
        reason text NOT NULL CHECK (reason IN ('own', 'duplicate', 'camera')),
        at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (request_id, alert_id)
    );
    CREATE INDEX open311_links_alert ON open311_links (alert_id);

    -- Photos uploaded with a report, served back at their media_url.
    CREATE TABLE open311_media (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        content_type text NOT NULL,
        body bytea NOT NULL,
        uploaded_at timestamptz NOT NULL DEFAULT now()
    );
    """


MIGRATIONS = [Migration(500, "open311 citizen reports", _v500_open311)]
