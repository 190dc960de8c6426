"""Evidence clips and their chain of custody (versions 600-619)."""

from __future__ import annotations

from .._migrations import Flavor, Migration


def _v600_clips(flavor: Flavor) -> str:
    # The clip's bytes live outside the database (evidence.ClipStore); a row holds what is
    # needed to prove them: both digests, the size and where they are kept. The custody log
    # is append-only twice over: each entry carries the hash of the one before it (an edit
    # anywhere breaks the chain, `ioc evidence verify`), and a trigger refuses UPDATE and
    # DELETE, so changing history takes a deliberate act of a database owner.
    return """
    CREATE TABLE evidence_clips (
        clip_id text PRIMARY KEY,
        alert_id uuid NOT NULL REFERENCES alerts (id),
        camera_id text NOT NULL,
        agent_id text NOT NULL,
        kind text NOT NULL,
        event_at timestamptz NOT NULL,
        started_at timestamptz NOT NULL,
        ended_at timestamptz NOT NULL,
        frames integer NOT NULL,
        size bigint NOT NULL,
        sha256 text NOT NULL,
        sha1 text NOT NULL,
        storage_key text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        deleted_at timestamptz
    );
    CREATE INDEX evidence_clips_alert ON evidence_clips (alert_id);
    CREATE INDEX evidence_clips_received ON evidence_clips (received_at) WHERE deleted_at IS NULL;

    CREATE TABLE evidence_custody (
        clip_id text NOT NULL,
        seq integer NOT NULL,
        at timestamptz NOT NULL,
        action text NOT NULL CHECK (action IN ('cut', 'received', 'verified', 'viewed',
            'exported', 'delivered', 'held', 'released', 'deleted', 'refused')),
        actor text NOT NULL,
        detail text NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL,
        PRIMARY KEY (clip_id, seq)
    );

    CREATE FUNCTION evidence_custody_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'evidence_custody is append-only (% refused)', TG_OP;
    END $$;
    CREATE TRIGGER evidence_custody_append_only BEFORE UPDATE OR DELETE ON evidence_custody
        FOR EACH ROW EXECUTE FUNCTION evidence_custody_append_only();

    -- Incidents marked as evidence: their clips outlive retention until released.
    CREATE TABLE evidence_holds (
        alert_id uuid PRIMARY KEY REFERENCES alerts (id),
        held_by text NOT NULL,
        held_at timestamptz NOT NULL DEFAULT now(),
        reason text NOT NULL
    );

    -- Refused uploads, for operators and for the edge's "do not resend" answer.
    CREATE TABLE evidence_refusals (
        clip_id text NOT NULL,
        agent_id text NOT NULL,
        camera_id text,
        reason text NOT NULL,
        at timestamptz NOT NULL DEFAULT now()
    );
    """


MIGRATIONS = [Migration(600, "evidence clips, custody log, holds", _v600_clips)]
