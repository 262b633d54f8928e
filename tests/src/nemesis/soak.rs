//! Randomized fault schedules (placeholder, filled below).
