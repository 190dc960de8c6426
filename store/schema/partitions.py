"""Plain PostgreSQL: partitions created ahead and dropped for retention, in SQL.

``partition_policies`` lists every range-partitioned table with its partition width and
retention. ``ioc_maintain_partitions(at)`` creates the partitions from one width before
``at`` to ``ahead`` widths after it, drops those wholly older than the retention, and
deletes expired rows that landed in a table's DEFAULT partition (writes far outside the
prepared range go there rather than failing). ``ioc_create_partitions(parent, from, to)``
prepares a range for a backfill. A new partition takes over the rows its range had in the
DEFAULT partition, so nothing written early is stranded there.

Partition names carry their lower bound (``wifi_samples_p20261125``); bounds are UTC.
"""

from __future__ import annotations

PARTITION_FUNCTIONS = r"""
CREATE TABLE partition_policies (
    parent text PRIMARY KEY,
    time_column text NOT NULL,
    step text NOT NULL CHECK (step IN ('day', 'week', 'month')),
    retain interval,
    ahead integer NOT NULL DEFAULT 3 CHECK (ahead >= 0)
);

CREATE FUNCTION ioc_partition_bounds(step text, at timestamptz)
RETURNS TABLE (lower_bound timestamptz, upper_bound timestamptz)
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_trunc(step, at, 'UTC'),
           (date_trunc(step, at, 'UTC') AT TIME ZONE 'UTC' + ('1 ' || step)::interval)
               AT TIME ZONE 'UTC'
$$;

CREATE FUNCTION ioc_create_partition(p_parent text, p_at timestamptz)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    pol partition_policies;
    lo timestamptz;
    hi timestamptz;
    part text;
BEGIN
    SELECT * INTO STRICT pol FROM partition_policies WHERE parent = p_parent;
    SELECT lower_bound, upper_bound INTO lo, hi FROM ioc_partition_bounds(pol.step, p_at);
    part := p_parent || '_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD');
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', part, p_parent);
    -- Rows of this range that went to the DEFAULT partition move in before attaching,
    -- which would otherwise fail on them.
    EXECUTE format(
        'WITH moved AS (DELETE FROM %I WHERE %I >= $1 AND %I < $2 RETURNING *) '
        'INSERT INTO %I SELECT * FROM moved',
        p_parent || '_default', pol.time_column, pol.time_column, part)
        USING lo, hi;
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%I >= %L AND %I < %L)',
        part, part || '_range', pol.time_column, lo, pol.time_column, hi);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        p_parent, part, lo, hi);
    -- The CHECK let ATTACH skip its scan; the partition bound now says the same.
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', part, part || '_range');
    RETURN true;
END $$;

CREATE FUNCTION ioc_create_partitions(p_parent text, p_from timestamptz, p_to timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    pol partition_policies;
    at timestamptz := p_from;
    created integer := 0;
BEGIN
    SELECT * INTO STRICT pol FROM partition_policies WHERE parent = p_parent;
    WHILE at < p_to LOOP
        IF ioc_create_partition(p_parent, at) THEN
            created := created + 1;
        END IF;
        SELECT upper_bound INTO at FROM ioc_partition_bounds(pol.step, at);
    END LOOP;
    RETURN created;
END $$;

CREATE FUNCTION ioc_maintain_partitions(p_at timestamptz DEFAULT now())
RETURNS TABLE (parent text, created integer, dropped integer, expired_default bigint)
LANGUAGE plpgsql AS $$
DECLARE
    pol partition_policies;
    step interval;
    part record;
    n_dropped integer;
    n_expired bigint;
BEGIN
    FOR pol IN SELECT * FROM partition_policies ORDER BY 1 LOOP
        step := ('1 ' || pol.step)::interval;
        parent := pol.parent;
        created := ioc_create_partitions(
            pol.parent, p_at - step, p_at + step * (pol.ahead + 1));
        n_dropped := 0;
        n_expired := 0;
        IF pol.retain IS NOT NULL THEN
            FOR part IN
                SELECT c.relname,
                       to_date(substring(c.relname FROM '_p(\d{8})$'), 'YYYYMMDD')::timestamp
                           AT TIME ZONE 'UTC' AS lower_bound
                FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = pol.parent::regclass
                  AND c.relname ~ '_p\d{8}$'
            LOOP
                IF (SELECT upper_bound FROM ioc_partition_bounds(pol.step, part.lower_bound))
                        <= p_at - pol.retain THEN
                    EXECUTE format('DROP TABLE %I', part.relname);
                    n_dropped := n_dropped + 1;
                END IF;
            END LOOP;
            EXECUTE format('DELETE FROM %I WHERE %I < $1',
                pol.parent || '_default', pol.time_column) USING p_at - pol.retain;
            GET DIAGNOSTICS n_expired = ROW_COUNT;
        END IF;
        dropped := n_dropped;
        expired_default := n_expired;
        RETURN NEXT;
    END LOOP;
END $$;
"""
