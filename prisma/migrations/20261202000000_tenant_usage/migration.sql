-- Per-tenant usage counters for the quotas: jobs queued or running, and bytes stored (live datasets
-- and registered bases, models and checkpoints of its jobs). Creating a job read them by counting
-- and summing over every row of the tenant (thousands of queued jobs made POST /v1/fine-tunes slow);
-- now it reads one row. Triggers keep them in the same statement as the change, whatever code path
-- writes the rows (Prisma, raw SQL, cascades), so a counter cannot drift from the rows it counts.
--
-- Two tables, not two columns of one: a create locks its tenant's jobs counter (FOR UPDATE, the
-- quota's serialisation) while it locks the rows it references; a dataset delete locks its row and
-- then changes the bytes counter. One shared row would let the two wait on each other (deadlock).
-- Every change that touches both takes the jobs counter first.

CREATE TABLE "tenant_active_jobs" (
    "tenant_id" TEXT NOT NULL,
    "jobs" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "tenant_active_jobs_pkey" PRIMARY KEY ("tenant_id")
);

CREATE TABLE "tenant_stored_bytes" (
    "tenant_id" TEXT NOT NULL,
    "bytes" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "tenant_stored_bytes_pkey" PRIMARY KEY ("tenant_id")
);

ALTER TABLE "tenant_active_jobs" ADD CONSTRAINT "tenant_active_jobs_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "tenant_stored_bytes" ADD CONSTRAINT "tenant_stored_bytes_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Adds to a tenant's counters (an upsert, so a missing row is made rather than a change lost).
CREATE FUNCTION graft_usage_add(tenant TEXT, jobs INTEGER, bytes BIGINT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF jobs <> 0 THEN
    INSERT INTO tenant_active_jobs AS t (tenant_id, jobs) VALUES (tenant, jobs)
      ON CONFLICT (tenant_id) DO UPDATE SET jobs = t.jobs + EXCLUDED.jobs;
  END IF;
  IF bytes <> 0 THEN
    INSERT INTO tenant_stored_bytes AS t (tenant_id, bytes) VALUES (tenant, bytes)
      ON CONFLICT (tenant_id) DO UPDATE SET bytes = t.bytes + EXCLUDED.bytes;
  END IF;
END $$;

CREATE FUNCTION graft_usage_tenant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO tenant_active_jobs (tenant_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
  INSERT INTO tenant_stored_bytes (tenant_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;

CREATE TRIGGER tenants_usage AFTER INSERT ON "tenants" FOR EACH ROW EXECUTE FUNCTION graft_usage_tenant();

-- A job: active while queued or running; its model's bytes once stored.
CREATE FUNCTION graft_usage_fine_tune() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  was_active INTEGER := 0;
  is_active INTEGER := 0;
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    was_active := CASE WHEN OLD.status IN ('queued', 'running') THEN 1 ELSE 0 END;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    is_active := CASE WHEN NEW.status IN ('queued', 'running') THEN 1 ELSE 0 END;
  END IF;
  IF TG_OP = 'INSERT' THEN
    PERFORM graft_usage_add(NEW.tenant_id, is_active, COALESCE(NEW.model_bytes, 0));
  ELSIF TG_OP = 'UPDATE' AND NEW.tenant_id = OLD.tenant_id THEN
    PERFORM graft_usage_add(NEW.tenant_id, is_active - was_active, COALESCE(NEW.model_bytes, 0) - COALESCE(OLD.model_bytes, 0));
  ELSIF TG_OP = 'UPDATE' THEN
    PERFORM graft_usage_add(OLD.tenant_id, -was_active, -COALESCE(OLD.model_bytes, 0));
    PERFORM graft_usage_add(NEW.tenant_id, is_active, COALESCE(NEW.model_bytes, 0));
  ELSE
    -- BEFORE DELETE: its checkpoints go with it (ON DELETE CASCADE), after this row is gone, when
    -- their own trigger can no longer find the tenant; they are counted out here, while it can.
    PERFORM graft_usage_add(OLD.tenant_id, -was_active,
      -COALESCE(OLD.model_bytes, 0) - (SELECT COALESCE(SUM(bytes), 0) FROM checkpoints WHERE fine_tune_id = OLD.id)::BIGINT);
    RETURN OLD;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER fine_tunes_usage AFTER INSERT OR UPDATE OF status, model_bytes, tenant_id ON "fine_tunes"
  FOR EACH ROW EXECUTE FUNCTION graft_usage_fine_tune();
CREATE TRIGGER fine_tunes_usage_delete BEFORE DELETE ON "fine_tunes"
  FOR EACH ROW EXECUTE FUNCTION graft_usage_fine_tune();

-- Datasets and registered bases: their bytes while not deleted (a deleted one is a tombstone row).
CREATE FUNCTION graft_usage_stored_file() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted_at IS NULL THEN
    PERFORM graft_usage_add(OLD.tenant_id, 0, -OLD.bytes);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL THEN
    PERFORM graft_usage_add(NEW.tenant_id, 0, NEW.bytes);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER datasets_usage AFTER INSERT OR UPDATE OF bytes, deleted_at, tenant_id OR DELETE ON "datasets"
  FOR EACH ROW EXECUTE FUNCTION graft_usage_stored_file();
CREATE TRIGGER base_models_usage AFTER INSERT OR UPDATE OF bytes, deleted_at, tenant_id OR DELETE ON "base_models"
  FOR EACH ROW EXECUTE FUNCTION graft_usage_stored_file();

-- Checkpoints: counted for the tenant of their job (looked up by its key).
CREATE FUNCTION graft_usage_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  tenant TEXT;
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    -- Not found: the job itself is being deleted and counted its checkpoints out already.
    SELECT tenant_id INTO tenant FROM fine_tunes WHERE id = OLD.fine_tune_id;
    IF FOUND THEN PERFORM graft_usage_add(tenant, 0, -OLD.bytes); END IF;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    SELECT tenant_id INTO tenant FROM fine_tunes WHERE id = NEW.fine_tune_id;
    IF FOUND THEN PERFORM graft_usage_add(tenant, 0, NEW.bytes); END IF;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER checkpoints_usage AFTER INSERT OR UPDATE OF bytes, fine_tune_id OR DELETE ON "checkpoints"
  FOR EACH ROW EXECUTE FUNCTION graft_usage_checkpoint();

-- Backfill, in this migration's transaction (the triggers above already count any later change).
INSERT INTO "tenant_active_jobs" ("tenant_id", "jobs")
SELECT t.id, (SELECT count(*) FROM fine_tunes f WHERE f.tenant_id = t.id AND f.status IN ('queued', 'running'))::INTEGER
FROM tenants t;

INSERT INTO "tenant_stored_bytes" ("tenant_id", "bytes")
SELECT t.id,
       (SELECT COALESCE(SUM(bytes), 0) FROM datasets WHERE tenant_id = t.id AND deleted_at IS NULL)
     + (SELECT COALESCE(SUM(bytes), 0) FROM base_models WHERE tenant_id = t.id AND deleted_at IS NULL)
     + (SELECT COALESCE(SUM(model_bytes), 0) FROM fine_tunes WHERE tenant_id = t.id)
     + (SELECT COALESCE(SUM(c.bytes), 0) FROM checkpoints c JOIN fine_tunes f ON f.id = c.fine_tune_id WHERE f.tenant_id = t.id)
FROM tenants t;
