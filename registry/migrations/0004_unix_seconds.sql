-- Whole unix seconds of a moment, as the services take every time (floor, as Python's
-- int(datetime.timestamp())): one name for the expression each query that returns a time used to
-- spell out. LANGUAGE sql and STABLE like its body, so Postgres inlines it: plans are unchanged.
CREATE FUNCTION unix_seconds(moment timestamptz) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT floor(extract(epoch FROM moment))::bigint $$;
