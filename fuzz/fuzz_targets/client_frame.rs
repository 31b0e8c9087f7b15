//! Every text frame a client can send: parsing never panics, and whatever parses
//! is valid by the protocol's own rules and survives a round trip.

#![no_main]

use chorus_protocol::{ClientFrame, validate_content, validate_ref};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = ClientFrame::parse(text) {
        if let ClientFrame::Message { content, reference } = &frame {
            assert!(validate_content(content).is_ok());
            assert!(reference.as_deref().is_none_or(|r| validate_ref(r).is_ok()));
        }
        assert_eq!(ClientFrame::parse(&frame.to_json()).as_ref(), Ok(&frame));
    }
});
