/** Storage failures, translated from driver errors at the adapter boundary. */
export type StorageErrorKind = 'conflict' | 'busy' | 'unavailable';

export class StorageError extends Error {
  readonly kind: StorageErrorKind;
  constructor(kind: StorageErrorKind, message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'StorageError';
    this.kind = kind;
  }
}
