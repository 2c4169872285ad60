-- The live feed of a job: events, progress updates and metrics share one order, the events' sequence,
-- so that Server-Sent Events carry one increasing id and `Last-Event-ID` resumes across all three.

-- CreateTable
CREATE TABLE "fine_tune_progress" (
    "seq" BIGINT NOT NULL DEFAULT nextval('events_seq_seq'::regclass),
    "fine_tune_id" TEXT NOT NULL,
    "phase" TEXT NOT NULL,
    "epoch" INTEGER NOT NULL,
    "epochs" INTEGER NOT NULL,
    "batch" INTEGER NOT NULL,
    "batches" INTEGER NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "fine_tune_progress_pkey" PRIMARY KEY ("seq")
);

-- CreateIndex
CREATE INDEX "fine_tune_progress_fine_tune_id_seq_idx" ON "fine_tune_progress"("fine_tune_id", "seq");

-- AddForeignKey
ALTER TABLE "fine_tune_progress" ADD CONSTRAINT "fine_tune_progress_fine_tune_id_fkey" FOREIGN KEY ("fine_tune_id") REFERENCES "fine_tunes"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AlterTable
ALTER TABLE "metrics" ADD COLUMN     "seq" BIGINT NOT NULL DEFAULT nextval('events_seq_seq'::regclass);

-- CreateIndex
CREATE INDEX "metrics_fine_tune_id_seq_idx" ON "metrics"("fine_tune_id", "seq");
