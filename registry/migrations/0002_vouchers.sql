-- Hotspot vouchers (issue 6, DESIGN §2.3): the indexes behind gettokens and a shape guard.
-- Vouchers live in the one tokens table; their codes are found through tokens_secret_hash_key
-- (globally unique already), so codes need no index of their own here.

-- An operator's live vouchers in creation order (gettokens' order, so limit/offset walk this
-- index). The INCLUDE columns are exactly what gettokens filters on: filters and offset are
-- decided inside the index (an index-only scan); only the page's rows are read from the table.
CREATE INDEX tokens_voucher_owner_idx ON tokens (owner_id, id)
    INCLUDE (first_used_at, repaid_at, multi_use, lifetime_s)
    WHERE kind = 'voucher' AND deleted_at IS NULL;

-- The same for a super_admin, who sees every operator's vouchers.
CREATE INDEX tokens_voucher_all_idx ON tokens (id)
    INCLUDE (first_used_at, repaid_at, multi_use, lifetime_s)
    WHERE kind = 'voucher' AND deleted_at IS NULL;

-- gettokens by u_id (exact), for one operator or for all.
CREATE INDEX tokens_voucher_ref_idx ON tokens (external_ref, owner_id, id)
    WHERE kind = 'voucher' AND deleted_at IS NULL AND external_ref IS NOT NULL;

-- A voucher always has its code (hash and sealed copy) and both lifecycle settings: gettokens'
-- filters read multi_use and lifetime_s as plain booleans and numbers, never as NULL.
ALTER TABLE tokens ADD CONSTRAINT tokens_voucher_shape_check CHECK (
    kind <> 'voucher'
    OR (secret_hash IS NOT NULL AND sealed_secret IS NOT NULL AND multi_use IS NOT NULL
        AND lifetime_s IS NOT NULL)
);
