-- AlterTable
ALTER TABLE "datasets" ADD COLUMN     "fingerprints_key" TEXT,
ADD COLUMN     "rows_key" TEXT,
ADD COLUMN     "stats" JSONB;
