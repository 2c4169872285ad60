-- The active-jobs counter, striped. One row per tenant made every create of a tenant queue on that
-- row (the quota check locks it FOR UPDATE, the trigger writes it) until its commit: ~500 creates/s
-- for one tenant, whatever the hardware. Now each tenant has ACTIVE_JOBS_STRIPES rows; a change is
-- added to the stripe of its connection (pg_backend_pid() % stripes), so concurrent transactions on
-- different connections write different rows. A tenant's count is the SUM of its stripes (one stripe
-- alone may be negative: a job counted in on one connection and out on another).
--
-- Every tenant has all of its stripes from its creation (the tenants trigger, and the backfill
-- below): the exact quota check locks them all. The writers still upsert, so a missing row is made
-- rather than a change lost.
--
-- Lock order (as in the migration tenant_usage): the rows a create references (FOR SHARE) first, then
-- the counter: one stripe (the fast path and every trigger), or all of them in stripe order (the
-- exact path). The jobs counter before the bytes counter.

-- The number of stripes: `ACTIVE_JOBS_STRIPES` in packages/db/src/quotas.ts says the same.
CREATE FUNCTION graft_active_jobs_stripes() RETURNS INTEGER LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 16';

-- This connection's stripe (a backend's pid does not change while it lives).
CREATE FUNCTION graft_active_jobs_stripe() RETURNS SMALLINT LANGUAGE sql STABLE PARALLEL SAFE AS
  'SELECT (pg_backend_pid() % graft_active_jobs_stripes())::smallint';

-- The existing row of each tenant becomes its stripe 0.
ALTER TABLE "tenant_active_jobs" ADD COLUMN "stripe" SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE "tenant_active_jobs" ALTER COLUMN "stripe" DROP DEFAULT;
ALTER TABLE "tenant_active_jobs" DROP CONSTRAINT "tenant_active_jobs_pkey";
ALTER TABLE "tenant_active_jobs" ADD CONSTRAINT "tenant_active_jobs_pkey" PRIMARY KEY ("tenant_id", "stripe");
ALTER TABLE "tenant_active_jobs" ADD CONSTRAINT "tenant_active_jobs_stripe_check" CHECK ("stripe" >= 0 AND "stripe" < graft_active_jobs_stripes());

INSERT INTO "tenant_active_jobs" ("tenant_id", "stripe", "jobs")
SELECT t.id, s::smallint, 0 FROM tenants t, generate_series(0, graft_active_jobs_stripes() - 1) s
ON CONFLICT DO NOTHING;

-- Adds to a tenant's counters: jobs to this connection's stripe.
CREATE OR REPLACE FUNCTION graft_usage_add(tenant TEXT, jobs INTEGER, bytes BIGINT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF jobs <> 0 THEN
    INSERT INTO tenant_active_jobs AS t (tenant_id, stripe, jobs) VALUES (tenant, graft_active_jobs_stripe(), jobs)
      ON CONFLICT (tenant_id, stripe) DO UPDATE SET jobs = t.jobs + EXCLUDED.jobs;
  END IF;
  IF bytes <> 0 THEN
    INSERT INTO tenant_stored_bytes AS t (tenant_id, bytes) VALUES (tenant, bytes)
      ON CONFLICT (tenant_id) DO UPDATE SET bytes = t.bytes + EXCLUDED.bytes;
  END IF;
END $$;

-- A new tenant gets all of its stripes at once (16 small rows, once per tenant).
CREATE OR REPLACE FUNCTION graft_usage_tenant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO tenant_active_jobs (tenant_id, stripe)
    SELECT NEW.id, s::smallint FROM generate_series(0, graft_active_jobs_stripes() - 1) s
    ON CONFLICT DO NOTHING;
  INSERT INTO tenant_stored_bytes (tenant_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;

-- Signals that the fast path's re-check failed: nothing was decided, the caller must retry its whole
-- create in a new transaction with `exact` (see below). Caught by packages/db/src/fine-tunes.ts.
-- SQLSTATE GQ001 (class GQ is no standard class).

-- The quota check of a job create: the tenant's count of jobs queued or running that the decision is
-- based on; the create may insert a job when it is below max_active. Called once per create, after
-- the create has locked the rows it references, before its insert (whose trigger then adds to a
-- stripe this call has locked). VOLATILE plpgsql on purpose: each statement in it takes a new
-- snapshot (READ COMMITTED), so a SUM read after a lock sees every transaction that held the lock.
--
-- Exact path (exact, or a count near the limit): lock ALL the tenant's stripes in stripe order, then
-- SUM. Every create in flight holds at least one stripe until it commits, so none is: the count is
-- exact, and creates near the limit are serialised, as with one row.
--
-- Fast path (an unlocked SUM at least 2 * stripes below the limit): lock only this connection's
-- stripe, then SUM; pass if SUM + stripes <= max_active. Why this is strict: take, among the creates
-- that passed and have committed at any moment, the one whose SUM ran last, D. Any other passed
-- create C is either visible to that SUM (committed before it) or was in flight when it ran: C's own
-- SUM ran earlier, after C locked its stripe, and C holds its lock until it commits. So at that
-- instant every such C held a stripe lock: pairwise different stripes (the locks are exclusive), none
-- D's own, and no exact path (it holds all the stripes): at most stripes - 1 of them. The count is
-- then at most SUM + 1 + (stripes - 1) <= max_active (an end committed since only lowers it). If D
-- took the exact path, nothing was in flight: SUM + 1 <= max_active.
--
-- Deadlock-free: the fast path holds at most one stripe and never waits for a second one (if its
-- re-check fails it raises GQ001 instead of going on to the exact path: the error ends its
-- transaction, releasing the stripe, and the retry starts clean). The exact path and the triggers
-- wait for stripes only in stripe order (a trigger: one stripe, the one a fast path of the same
-- transaction already holds). No holder of a stripe then waits for a referenced row (those are
-- locked first). Any cycle would need a holder of a higher stripe waiting for a lower one.
--
-- max_active <= 0: no check and no lock (the insert's trigger still counts the job on its stripe).
CREATE FUNCTION graft_active_jobs_claim(tenant TEXT, max_active INTEGER, exact BOOLEAN DEFAULT false)
RETURNS INTEGER LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  stripes CONSTANT INTEGER := graft_active_jobs_stripes();
  mine CONSTANT SMALLINT := graft_active_jobs_stripe();
  active INTEGER;
BEGIN
  IF max_active <= 0 THEN
    RETURN 0;
  END IF;
  IF NOT exact THEN
    SELECT COALESCE(SUM(jobs), 0) INTO active FROM tenant_active_jobs WHERE tenant_id = tenant;
    IF active + 2 * stripes <= max_active THEN
      PERFORM 1 FROM tenant_active_jobs WHERE tenant_id = tenant AND stripe = mine FOR UPDATE;
      IF NOT FOUND THEN
        -- Only from the tenants table (a missing tenant: no row, no foreign-key error; the insert says).
        INSERT INTO tenant_active_jobs (tenant_id, stripe) SELECT id, mine FROM tenants WHERE id = tenant ON CONFLICT DO NOTHING;
        PERFORM 1 FROM tenant_active_jobs WHERE tenant_id = tenant AND stripe = mine FOR UPDATE;
      END IF;
      SELECT COALESCE(SUM(jobs), 0) INTO active FROM tenant_active_jobs WHERE tenant_id = tenant;
      IF active + stripes <= max_active THEN
        RETURN active;
      END IF;
      RAISE EXCEPTION 'graft: the active-jobs count of % came near its limit; retry with the exact check', tenant
        USING ERRCODE = 'GQ001';
    END IF;
  END IF;
  INSERT INTO tenant_active_jobs (tenant_id, stripe)
    SELECT t.id, s::smallint FROM tenants t, generate_series(0, stripes - 1) s WHERE t.id = tenant
    ON CONFLICT DO NOTHING;
  PERFORM 1 FROM tenant_active_jobs WHERE tenant_id = tenant ORDER BY stripe FOR UPDATE;
  SELECT COALESCE(SUM(jobs), 0) INTO active FROM tenant_active_jobs WHERE tenant_id = tenant;
  RETURN active;
END $$;
