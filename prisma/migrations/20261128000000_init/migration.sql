-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "FineTuneStatus" AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');

-- CreateEnum
CREATE TYPE "EventLevel" AS ENUM ('info', 'warning', 'error');

-- CreateTable
CREATE TABLE "datasets" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "task" TEXT NOT NULL,
    "storage_key" TEXT NOT NULL,
    "bytes" BIGINT NOT NULL,
    "sha256" TEXT NOT NULL,
    "image_count" INTEGER NOT NULL,
    "classes" JSONB NOT NULL,
    "skipped" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "datasets_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "fine_tunes" (
    "id" TEXT NOT NULL,
    "status" "FineTuneStatus" NOT NULL DEFAULT 'queued',
    "base_model_id" TEXT NOT NULL,
    "dataset_id" TEXT NOT NULL,
    "request" JSONB NOT NULL,
    "idempotency_key" TEXT,
    "request_hash" TEXT NOT NULL,
    "epoch" INTEGER NOT NULL DEFAULT 0,
    "epochs" INTEGER NOT NULL,
    "batch" INTEGER NOT NULL DEFAULT 0,
    "batches" INTEGER NOT NULL DEFAULT 0,
    "latest_metrics" JSONB,
    "result" JSONB,
    "error" JSONB,
    "model_key" TEXT,
    "model_bytes" BIGINT,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "cancel_requested_at" TIMESTAMPTZ(3),

    CONSTRAINT "fine_tunes_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "events" (
    "seq" BIGSERIAL NOT NULL,
    "id" TEXT NOT NULL,
    "fine_tune_id" TEXT NOT NULL,
    "level" "EventLevel" NOT NULL,
    "type" TEXT NOT NULL,
    "message" TEXT NOT NULL,
    "data" JSONB,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "events_pkey" PRIMARY KEY ("seq")
);

-- CreateTable
CREATE TABLE "metrics" (
    "fine_tune_id" TEXT NOT NULL,
    "epoch" INTEGER NOT NULL,
    "phase" TEXT NOT NULL,
    "loss" DOUBLE PRECISION NOT NULL,
    "accuracy" DOUBLE PRECISION NOT NULL,
    "val_loss" DOUBLE PRECISION,
    "val_accuracy" DOUBLE PRECISION,
    "duration_ms" INTEGER NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "metrics_pkey" PRIMARY KEY ("fine_tune_id","epoch")
);

-- CreateIndex
CREATE INDEX "datasets_created_at_id_idx" ON "datasets"("created_at", "id");

-- CreateIndex
CREATE UNIQUE INDEX "fine_tunes_idempotency_key_key" ON "fine_tunes"("idempotency_key");

-- CreateIndex
CREATE INDEX "fine_tunes_status_created_at_id_idx" ON "fine_tunes"("status", "created_at", "id");

-- CreateIndex
CREATE INDEX "fine_tunes_created_at_id_idx" ON "fine_tunes"("created_at", "id");

-- CreateIndex
CREATE UNIQUE INDEX "events_id_key" ON "events"("id");

-- CreateIndex
CREATE INDEX "events_fine_tune_id_seq_idx" ON "events"("fine_tune_id", "seq");

-- AddForeignKey
ALTER TABLE "fine_tunes" ADD CONSTRAINT "fine_tunes_dataset_id_fkey" FOREIGN KEY ("dataset_id") REFERENCES "datasets"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "events" ADD CONSTRAINT "events_fine_tune_id_fkey" FOREIGN KEY ("fine_tune_id") REFERENCES "fine_tunes"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "metrics" ADD CONSTRAINT "metrics_fine_tune_id_fkey" FOREIGN KEY ("fine_tune_id") REFERENCES "fine_tunes"("id") ON DELETE CASCADE ON UPDATE CASCADE;

