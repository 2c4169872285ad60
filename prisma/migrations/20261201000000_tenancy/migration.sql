-- Tenancy: tenants, their API keys (only a sha256 of each secret is stored), and the tenant that
-- owns every dataset, job, registered base and webhook endpoint. Existing rows, and every request
-- in development mode (AUTH=none), belong to the tenant `default`.

-- CreateTable
CREATE TABLE "tenants" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "tenants_pkey" PRIMARY KEY ("id")
);

INSERT INTO "tenants" ("id", "name") VALUES ('default', 'default');

-- CreateTable
CREATE TABLE "api_keys" (
    "id" TEXT NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "name" TEXT NOT NULL DEFAULT '',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_used_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),

    CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id")
);

CREATE UNIQUE INDEX "api_keys_prefix_key" ON "api_keys"("prefix");
CREATE UNIQUE INDEX "api_keys_hash_key" ON "api_keys"("hash");
CREATE INDEX "api_keys_tenant_id_idx" ON "api_keys"("tenant_id");
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AlterTable: owners
ALTER TABLE "datasets" ADD COLUMN "tenant_id" TEXT NOT NULL DEFAULT 'default';
ALTER TABLE "fine_tunes" ADD COLUMN "tenant_id" TEXT NOT NULL DEFAULT 'default';
ALTER TABLE "base_models" ADD COLUMN "tenant_id" TEXT NOT NULL DEFAULT 'default';
ALTER TABLE "webhook_endpoints" ADD COLUMN "tenant_id" TEXT NOT NULL DEFAULT 'default';

ALTER TABLE "datasets" ADD CONSTRAINT "datasets_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "fine_tunes" ADD CONSTRAINT "fine_tunes_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "base_models" ADD CONSTRAINT "base_models_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "webhook_endpoints" ADD CONSTRAINT "webhook_endpoints_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Lists are per tenant, newest first.
CREATE INDEX "datasets_tenant_id_created_at_id_idx" ON "datasets"("tenant_id", "created_at", "id");
CREATE INDEX "fine_tunes_tenant_id_created_at_id_idx" ON "fine_tunes"("tenant_id", "created_at", "id");
CREATE INDEX "fine_tunes_tenant_id_status_created_at_id_idx" ON "fine_tunes"("tenant_id", "status", "created_at", "id");
CREATE INDEX "base_models_tenant_id_created_at_id_idx" ON "base_models"("tenant_id", "created_at", "id");
CREATE INDEX "webhook_endpoints_tenant_id_created_at_id_idx" ON "webhook_endpoints"("tenant_id", "created_at", "id");

-- Idempotency keys are scoped per tenant (two tenants may use the same key).
DROP INDEX "fine_tunes_idempotency_key_key";
CREATE UNIQUE INDEX "fine_tunes_tenant_id_idempotency_key_key" ON "fine_tunes"("tenant_id", "idempotency_key");
