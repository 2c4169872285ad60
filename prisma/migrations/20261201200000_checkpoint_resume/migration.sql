-- A checkpoint's resume state (optimizer, position, PRNG, early stopping) in storage, beside its zip.
ALTER TABLE "checkpoints" ADD COLUMN "resume_key" TEXT;
