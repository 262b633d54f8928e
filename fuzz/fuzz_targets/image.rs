#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| doozer_fuzz::image::run(data));
