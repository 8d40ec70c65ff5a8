-- Zabbix token.get (issue 3): `search` on name and description is a case-insensitive substring
-- match (ILIKE '%x%'), which a b-tree cannot serve; trigram indexes can, at millions of tokens.
-- pg_trgm is a trusted extension: the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX tokens_zabbix_name_trgm_idx ON tokens USING gin (name gin_trgm_ops) WHERE kind = 'zabbix';
CREATE INDEX tokens_zabbix_description_trgm_idx ON tokens USING gin (description gin_trgm_ops)
    WHERE kind = 'zabbix';
