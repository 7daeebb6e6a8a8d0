// Keeps the test-support library non-empty while every support piece is header-only.
// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
