#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pandav::dav::fuzz::xml_body(data));
