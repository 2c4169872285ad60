-- AlterTable
ALTER TABLE "fine_tunes" ADD COLUMN     "resources" JSONB;
