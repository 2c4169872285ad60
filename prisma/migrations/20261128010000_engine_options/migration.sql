-- AlterTable
ALTER TABLE "fine_tunes" ADD COLUMN     "phase" TEXT NOT NULL DEFAULT '',
ADD COLUMN     "test_dataset_id" TEXT;

-- CreateTable
CREATE TABLE "base_models" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "task" TEXT NOT NULL,
    "description" TEXT NOT NULL,
    "format" TEXT NOT NULL,
    "input_shape" JSONB NOT NULL,
    "feature_layer" TEXT NOT NULL,
    "feature_shape" JSONB NOT NULL,
    "preprocessing" JSONB NOT NULL,
    "source" TEXT NOT NULL,
    "license" TEXT NOT NULL,
    "pretrained_on" TEXT NOT NULL,
    "storage_key" TEXT NOT NULL,
    "sha256" TEXT NOT NULL,
    "bytes" BIGINT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "base_models_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "checkpoints" (
    "id" TEXT NOT NULL,
    "fine_tune_id" TEXT NOT NULL,
    "phase" TEXT NOT NULL,
    "epoch" INTEGER NOT NULL,
    "batch" INTEGER,
    "val_loss" DOUBLE PRECISION,
    "val_accuracy" DOUBLE PRECISION,
    "is_best" BOOLEAN NOT NULL DEFAULT false,
    "storage_key" TEXT NOT NULL,
    "bytes" BIGINT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "checkpoints_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "base_models_created_at_id_idx" ON "base_models"("created_at", "id");

-- CreateIndex
CREATE INDEX "checkpoints_fine_tune_id_created_at_idx" ON "checkpoints"("fine_tune_id", "created_at");

-- AddForeignKey
ALTER TABLE "fine_tunes" ADD CONSTRAINT "fine_tunes_test_dataset_id_fkey" FOREIGN KEY ("test_dataset_id") REFERENCES "datasets"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "checkpoints" ADD CONSTRAINT "checkpoints_fine_tune_id_fkey" FOREIGN KEY ("fine_tune_id") REFERENCES "fine_tunes"("id") ON DELETE CASCADE ON UPDATE CASCADE;

