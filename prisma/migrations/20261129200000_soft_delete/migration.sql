-- AlterTable
ALTER TABLE "datasets" ADD COLUMN     "deleted_at" TIMESTAMPTZ(3);

-- AlterTable
ALTER TABLE "base_models" ADD COLUMN     "deleted_at" TIMESTAMPTZ(3);
